"""API keys: created and revoked by an admin, verified on every request.

Only a SHA-256 of each secret is stored. Redis holds the records so every replica sees a new or revoked key at once;
while a configured Redis is down, keys this replica verified recently keep working from a local cache (unknown keys
are refused) and changes are refused with `KeyStoreUnavailable` rather than written to one replica only. Without
Redis configured the same store lives in process memory.

Redis layout: hash `{prefix}key:{id}` (the record), string `{prefix}keyhash:{sha256}` -> id (live keys only), set
`{prefix}keys` (every id, revoked ones included, for audit).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from control_plane.core.redis import REDIS_ERRORS, SharedRedis

SCOPES = ("detect", "analyze", "compare", "batch", "admin")
SECRET_PREFIX = "fa_"
# "fa_" + token_urlsafe(32): 43 urlsafe-base64 characters. Anything else is refused before any lookup.
_SECRET_RE = re.compile(r"fa_[A-Za-z0-9_-]{43}")


class KeyStoreUnavailable(RuntimeError):
    """Redis is configured but down: a change now would be lost or seen by this replica only."""


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    tier: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    def public(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "tier": self.tier,
            "created_at": _iso(self.created_at),
            "last_used_at": _iso(self.last_used_at),
            "revoked_at": _iso(self.revoked_at),
            "revoked": self.revoked_at is not None,
        }


def hash_secret(secret: str) -> str:
    # The secret carries 256 random bits, so brute force is hopeless whatever the hash costs: an unsalted fast hash
    # is enough, and it lets us find the key by its hash (a salted or slow hash would need a scan or an id prefix).
    return hashlib.sha256(secret.encode()).hexdigest()


def _opt(v: str) -> float | None:
    return float(v) if v else None


def _to_fields(key: ApiKey, sha: str) -> dict[str, str]:
    return {
        "id": key.id,
        "name": key.name,
        "scopes": ",".join(key.scopes),
        "tier": key.tier,
        "created_at": repr(key.created_at),
        "last_used_at": "" if key.last_used_at is None else repr(key.last_used_at),
        "revoked_at": "" if key.revoked_at is None else repr(key.revoked_at),
        "hash": sha,
    }


def _from_fields(raw: dict) -> tuple[ApiKey, str]:
    f = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()
    }
    key = ApiKey(
        id=f["id"],
        name=f["name"],
        scopes=tuple(s for s in f["scopes"].split(",") if s),
        tier=f["tier"],
        created_at=float(f["created_at"]),
        last_used_at=_opt(f.get("last_used_at", "")),
        revoked_at=_opt(f.get("revoked_at", "")),
    )
    return key, f["hash"]


class KeyStore:
    def __init__(
        self, redis: SharedRedis, prefix: str = "fa:", local_ttl_s: float = 300.0, touch_interval_s: float = 60.0
    ):
        self.redis = redis
        self.prefix = prefix
        self.local_ttl_s = local_ttl_s
        self.touch_interval_s = touch_interval_s
        # Without Redis configured: the store itself (id -> (key, sha)) and its index (sha -> id).
        self._mem: dict[str, tuple[ApiKey, str]] = {}
        self._mem_by_hash: dict[str, str] = {}
        # With Redis: sha -> (key, monotonic time verified), read only while Redis is down.
        self._verified: dict[str, tuple[ApiKey, float]] = {}

    def _k(self, key_id: str) -> str:
        return f"{self.prefix}key:{key_id}"

    def _h(self, sha: str) -> str:
        return f"{self.prefix}keyhash:{sha}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}keys"

    async def create(self, name: str, scopes: Iterable[str], tier: str) -> tuple[str, ApiKey]:
        """A new key; the secret is returned once here and never stored."""
        name = (name or "").strip()
        wanted = set(scopes)
        if not name:
            raise ValueError("a key needs a name")
        if not wanted:
            raise ValueError("a key needs at least one scope")
        unknown = wanted.difference(SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes {sorted(unknown)}; known: {list(SCOPES)}")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        sha = hash_secret(secret)
        key = ApiKey(
            id=secrets.token_hex(6),
            name=name,
            scopes=tuple(s for s in SCOPES if s in wanted),
            tier=tier,
            created_at=time.time(),
            last_used_at=None,
            revoked_at=None,
        )
        if not self.redis.configured:
            while key.id in self._mem:  # 48 random bits: a clash is all but impossible, but cheap to rule out
                key = replace(key, id=secrets.token_hex(6))
            self._mem[key.id] = (key, sha)
            self._mem_by_hash[sha] = key.id
            return secret, key
        try:
            client = self.redis.client
            while await client.exists(self._k(key.id)):
                key = replace(key, id=secrets.token_hex(6))
            async with client.pipeline(transaction=True) as pipe:
                pipe.hset(self._k(key.id), mapping=_to_fields(key, sha))
                pipe.set(self._h(sha), key.id)
                pipe.sadd(self._index, key.id)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            self.redis.mark_down(exc)
            raise KeyStoreUnavailable("the key store (Redis) is unreachable") from exc
        self.redis.mark_up()
        return secret, key

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The live key behind `secret`, or None (unknown, malformed or revoked)."""
        if not isinstance(secret, str) or not _SECRET_RE.fullmatch(secret):
            return None
        sha = hash_secret(secret)
        if not self.redis.configured:
            key_id = self._mem_by_hash.get(sha)
            if key_id is None:
                return None
            key, stored = self._mem[key_id]
            if not hmac.compare_digest(stored, sha) or key.revoked_at is not None:
                return None
            if self._touch_due(key):
                key = replace(key, last_used_at=time.time())
                self._mem[key_id] = (key, stored)
            return key
        if self.redis.usable():
            try:
                key = await self._authenticate_redis(sha)
                self.redis.mark_up()
            except REDIS_ERRORS as exc:
                self.redis.mark_down(exc)
            else:
                if key is None:
                    self._verified.pop(sha, None)
                else:
                    self._remember(sha, key)
                return key
        # Redis is down: trust only what Redis itself confirmed lately.
        cached = self._verified.get(sha)
        if cached is not None and time.monotonic() - cached[1] < self.local_ttl_s:
            return cached[0]
        return None

    async def _authenticate_redis(self, sha: str) -> ApiKey | None:
        client = self.redis.client
        # Looked up by hash: the time taken does not depend on how much of a wrong secret matches.
        key_id = await client.get(self._h(sha))
        if key_id is None:
            return None
        raw = await client.hgetall(self._k(key_id.decode()))
        if not raw:
            return None
        key, stored = _from_fields(raw)
        if not hmac.compare_digest(stored, sha) or key.revoked_at is not None:
            return None
        if self._touch_due(key):
            key = replace(key, last_used_at=time.time())
            await client.hset(self._k(key.id), "last_used_at", repr(key.last_used_at))
        return key

    def _touch_due(self, key: ApiKey) -> bool:
        # One write per key per interval, not one per request.
        return key.last_used_at is None or time.time() - key.last_used_at >= self.touch_interval_s

    def _remember(self, sha: str, key: ApiKey) -> None:
        now = time.monotonic()
        self._verified[sha] = (key, now)
        if len(self._verified) > 10_000:
            self._verified = {s: e for s, e in self._verified.items() if now - e[1] < self.local_ttl_s}

    async def get(self, key_id: str) -> ApiKey | None:
        """Revoked keys included. Raises KeyStoreUnavailable when Redis is configured but down."""
        if not self.redis.configured:
            entry = self._mem.get(key_id)
            return None if entry is None else entry[0]
        try:
            raw = await self.redis.client.hgetall(self._k(key_id))
        except REDIS_ERRORS as exc:
            self.redis.mark_down(exc)
            raise KeyStoreUnavailable("the key store (Redis) is unreachable") from exc
        self.redis.mark_up()
        return _from_fields(raw)[0] if raw else None

    async def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        if not self.redis.configured:
            keys = [k for k, _ in self._mem.values()]
        else:
            try:
                client = self.redis.client
                ids = sorted(i.decode() for i in await client.smembers(self._index))
                async with client.pipeline(transaction=False) as pipe:
                    for key_id in ids:
                        pipe.hgetall(self._k(key_id))
                    raws = await pipe.execute() if ids else []
            except REDIS_ERRORS as exc:
                self.redis.mark_down(exc)
                raise KeyStoreUnavailable("the key store (Redis) is unreachable") from exc
            self.redis.mark_up()
            keys = [_from_fields(raw)[0] for raw in raws if raw]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    async def revoke(self, key_id: str) -> bool:
        """Revoke at once; the record stays for audit. False when no such key exists."""
        if not self.redis.configured:
            entry = self._mem.get(key_id)
            if entry is None:
                return False
            key, sha = entry
            if key.revoked_at is None:
                self._mem[key_id] = (replace(key, revoked_at=time.time()), sha)
            self._mem_by_hash.pop(sha, None)
            return True
        try:
            client = self.redis.client
            raw = await client.hgetall(self._k(key_id))
            if not raw:
                self.redis.mark_up()
                return False
            key, sha = _from_fields(raw)
            async with client.pipeline(transaction=True) as pipe:
                if key.revoked_at is None:  # revoking twice keeps the first time
                    pipe.hset(self._k(key_id), "revoked_at", repr(time.time()))
                pipe.delete(self._h(sha))
                await pipe.execute()
        except REDIS_ERRORS as exc:
            self.redis.mark_down(exc)
            raise KeyStoreUnavailable("the key store (Redis) is unreachable") from exc
        self.redis.mark_up()
        self._verified.pop(sha, None)
        return True
