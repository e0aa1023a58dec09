"""The optional local-disk tier for long-lived results (embeddings), on `diskcache`, always encrypted.

Cached results hold face embeddings, which are biometric data: this tier refuses to run without an `Encryptor`.
diskcache is synchronous (SQLite + files), so every call runs in a worker thread. A disk failure or an entry that
cannot be decrypted is a miss, never an error to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import diskcache
from diskcache.core import MODE_PICKLE

from control_plane.cache.codec import CacheCodecError
from control_plane.cache.crypto import Encryptor

log = logging.getLogger(__name__)

_DISK_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout, CacheCodecError)


class _BytesOnlyDisk(diskcache.Disk):
    """diskcache unpickles values it stored pickled; we only ever store bytes, so refuse pickled rows outright
    (a tampered cache directory must not become code execution)."""

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if type(value) is not bytes:
            raise TypeError("DiskCache stores bytes only")
        return super().store(value, read, key=key)

    def fetch(self, mode, filename, value, read):
        if mode == MODE_PICKLE:
            raise CacheCodecError("pickled entry in the disk cache")
        return super().fetch(mode, filename, value, read)


class DiskCache:
    def __init__(self, directory: Path, encryptor: Encryptor, ttl_s: int, max_mb: int):
        if encryptor is None:
            raise ValueError("the disk cache holds biometric data (embeddings) and requires an encryption key")
        self.encryptor = encryptor
        self.ttl_s = ttl_s
        # A short SQLite busy timeout: a cache lookup that waits on a lock is worse than a miss.
        self._cache = diskcache.Cache(
            str(directory), timeout=1.0, disk=_BytesOnlyDisk, size_limit=int(max_mb) * 1024 * 1024
        )

    def get_sync(self, key: str) -> bytes | None:
        try:
            token = self._cache.get(key)
            return None if token is None else self.encryptor.decrypt(token)
        except _DISK_ERRORS as exc:
            log.warning("disk cache read failed, treated as a miss: %s", exc, extra={"event": "cache_disk_error"})
            return None

    def set_sync(self, key: str, value: bytes) -> None:
        try:
            self._cache.set(key, self.encryptor.encrypt(value), expire=self.ttl_s if self.ttl_s > 0 else None)
        except _DISK_ERRORS as exc:
            log.warning("disk cache write failed, skipped: %s", exc, extra={"event": "cache_disk_error"})

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self.get_sync, key)

    async def set(self, key: str, value: bytes) -> None:
        await asyncio.to_thread(self.set_sync, key, value)

    def close(self) -> None:
        self._cache.close()
