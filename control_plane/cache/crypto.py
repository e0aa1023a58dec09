"""Encryption of cached values at rest (Redis, local disk) with Fernet (AES-128-CBC + HMAC-SHA256).

The configured secret is either a Fernet key as `Fernet.generate_key()` prints it (urlsafe base64 of 32 bytes),
used as is, or any other non-empty string, taken as a passphrase and stretched with scrypt (n=2**14, r=8, p=1) and
the fixed salt `_SALT` into a Fernet key. The salt is fixed on purpose: every replica must derive the same key from
the same passphrase. Changing it (or the scrypt cost) changes the key, so old entries become misses, not errors.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from control_plane.cache.codec import CacheCodecError

_SALT = b"face-analysis/control-plane/cache/v1"


def _is_fernet_key(secret: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(secret.encode("ascii"))) == 32 and len(secret) == 44
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return False


def derive_key(passphrase: str) -> bytes:
    """The Fernet key a passphrase stands for (deterministic: same passphrase, same key on every replica)."""
    kdf = Scrypt(salt=_SALT, length=32, n=2**14, r=8, p=1)
    return base64.urlsafe_b64encode(kdf.derive(passphrase.encode("utf-8")))


class Encryptor:
    def __init__(self, key: bytes | str):
        self._fernet = Fernet(key)

    @classmethod
    def from_secret(cls, secret: str | None) -> Encryptor | None:
        """An encryptor for a configured secret; None (no encryption) when the secret is unset or empty."""
        if not secret:
            return None
        return cls(secret.encode("ascii") if _is_fernet_key(secret) else derive_key(secret))

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except (InvalidToken, TypeError) as exc:
            raise CacheCodecError("cached value cannot be decrypted (corrupt or written with another key)") from exc
