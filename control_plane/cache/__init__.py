"""Caching of ensemble results (never images): keys, a safe codec, encryption at rest and memory/Redis/disk tiers."""

from control_plane.cache.codec import CacheCodecError, decode_result, encode_result
from control_plane.cache.crypto import Encryptor
from control_plane.cache.disk import DiskCache
from control_plane.cache.keys import KEY_VERSION, cache_key
from control_plane.cache.memory import MemoryCache
from control_plane.cache.redis_tier import RedisCache
from control_plane.cache.tiered import TieredCache

__all__ = [
    "KEY_VERSION",
    "CacheCodecError",
    "DiskCache",
    "Encryptor",
    "MemoryCache",
    "RedisCache",
    "TieredCache",
    "cache_key",
    "decode_result",
    "encode_result",
]
