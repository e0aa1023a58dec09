"""A safe, versioned binary format for cached `AnalysisResult`s.

Layout (all integers little-endian):

    b"FACR"  | u8 format version | u32 header length | header (UTF-8 JSON) | array data

The header is `{"meta": {...}, "arrays": [{"name", "dtype", "shape", "offset"}, ...]}`; the arrays' raw bytes follow
each other in header order, each padded to 8 bytes, and must tile the data section exactly. Decoding only builds
numeric arrays from an allow-list of dtypes with `np.frombuffer` (no pickle, no object arrays) and checks every size,
so it gives back bit-identical arrays or raises `CacheCodecError`. Bump `FORMAT_VERSION` (and `keys.KEY_VERSION`) on
any change.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping

import numpy as np

from face_analysis.client import AnalysisResult

MAGIC = b"FACR"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sBI")
_REQUIRED = ("boxes", "scores", "landmarks", "embeddings")
_OPTIONAL = ("gender", "age")
# Plain numeric dtypes only, always stored little-endian.
_DTYPES = frozenset(
    np.dtype(t).newbyteorder("<").str for t in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1")
)
_ALIGN = 8


class CacheCodecError(ValueError):
    """Cached bytes that cannot be read back: corrupt, foreign, written by another format version or another key."""


def encode_result(result: AnalysisResult, meta: Mapping[str, object]) -> bytes:
    arrays: list[dict] = []
    chunks: list[bytes] = []
    offset = 0
    for name in _REQUIRED + _OPTIONAL:
        value = getattr(result, name)
        if value is None:
            if name in _REQUIRED:
                raise CacheCodecError(f"result.{name} is missing")
            continue
        array = np.asarray(value)
        dtype = array.dtype.newbyteorder("<")
        if dtype.str not in _DTYPES:
            raise CacheCodecError(f"result.{name} has unsupported dtype {array.dtype}")
        raw = np.ascontiguousarray(array, dtype=dtype).tobytes()
        arrays.append({"name": name, "dtype": dtype.str, "shape": list(array.shape), "offset": offset})
        padding = -len(raw) % _ALIGN
        chunks.append(raw + b"\0" * padding)
        offset += len(raw) + padding
    try:
        header = json.dumps({"meta": dict(meta), "arrays": arrays}, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CacheCodecError(f"meta is not JSON-serialisable: {exc}") from exc
    head = header.encode("utf-8")
    return b"".join([_PREFIX.pack(MAGIC, FORMAT_VERSION, len(head)), head, *chunks])


def decode_result(data: bytes) -> tuple[AnalysisResult, dict]:
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < _PREFIX.size:
        raise CacheCodecError("not a cached result: too short")
    magic, version, head_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CacheCodecError("not a cached result: bad magic")
    if version != FORMAT_VERSION:
        raise CacheCodecError(f"unsupported cache format version {version}")
    start = _PREFIX.size + head_len
    if start > len(data):
        raise CacheCodecError("truncated header")
    try:
        header = json.loads(bytes(data[_PREFIX.size : start]).decode("utf-8"))
        meta, specs = header["meta"], header["arrays"]
        if not isinstance(meta, dict) or not isinstance(specs, list):
            raise TypeError("bad header layout")
        # One writable copy of the data section: arrays are views into it, so callers may modify them in place.
        body = bytearray(data[start:])
        found, end = {}, 0
        for spec in specs:
            if spec["name"] in found:
                raise CacheCodecError(f"duplicate array {spec['name']!r}")
            found[spec["name"]], end = _array(body, spec, end)
        if end != len(body):
            raise CacheCodecError("array data does not match the header")
    except CacheCodecError:
        raise
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise CacheCodecError(f"corrupt cached result: {exc}") from exc
    missing = [n for n in _REQUIRED if n not in found]
    unknown = [n for n in found if n not in _REQUIRED + _OPTIONAL]
    if missing or unknown:
        raise CacheCodecError(f"corrupt cached result: missing {missing}, unknown {unknown}")
    return AnalysisResult(**found), meta


def _array(body: bytearray, spec: dict, offset: int) -> tuple[np.ndarray, int]:
    """The array `spec` describes, which must start at `offset` (arrays tile the data section exactly, in order),
    and where the next one starts."""
    dtype, shape = spec["dtype"], spec["shape"]
    if dtype not in _DTYPES:
        raise CacheCodecError(f"unsupported dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise CacheCodecError(f"bad shape {shape!r}")
    if spec["offset"] != offset:
        raise CacheCodecError("array data does not match the header")
    count = math.prod(shape)  # a Python int: a forged huge shape cannot overflow past the size check
    size = count * np.dtype(dtype).itemsize
    end = offset + size + (-size % _ALIGN)
    if end > len(body):
        raise CacheCodecError("truncated array data")
    if count == 0:
        return np.empty(shape, dtype=dtype), end
    return np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(shape), end
