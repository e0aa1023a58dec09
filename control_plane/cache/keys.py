"""Cache keys for ensemble results: what the result of one call depends on, hashed.

A key covers the image (by its SHA-256, so the image itself is never kept), the model pack that produced the result
and the request options that change it. Options are hashed as canonical JSON (sorted keys, compact separators,
None kept), so `{"threshold": None}` and `{"threshold": 0.5}` are different keys while dict order does not matter.

`KEY_VERSION` is part of the hash: bump it whenever the scheme changes (fields, encoding, the meaning of an option
or the stored value's format) so that replicas running the new code never read entries written by the old one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

KEY_VERSION = 1


def cache_key(image: bytes, pack: str, options: Mapping[str, object]) -> str:
    """Hex SHA-256 naming the result of analysing `image` with `pack` and `options` (JSON-serialisable values)."""
    return cache_key_for_digest(hashlib.sha256(image).hexdigest(), pack, options)


def cache_key_for_digest(image_sha256: str, pack: str, options: Mapping[str, object]) -> str:
    """`cache_key` for an image whose hex SHA-256 is already known (hash each upload once)."""
    envelope = {
        "v": KEY_VERSION,
        "image": image_sha256,
        "pack": pack,
        "options": dict(options),
    }
    # allow_nan=False: NaN/Infinity are not JSON and would make two "equal" requests hash apart or collide oddly.
    canonical = json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
