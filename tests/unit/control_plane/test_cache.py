"""The result cache without Redis: keys, codec, encryption, the memory and disk tiers and their composition."""

from __future__ import annotations

import struct
from pathlib import Path

import diskcache
import numpy as np
import pytest
from cryptography.fernet import Fernet

from control_plane.cache.codec import CacheCodecError, decode_result, encode_result
from control_plane.cache.crypto import Encryptor
from control_plane.cache.disk import DiskCache
from control_plane.cache.keys import cache_key
from control_plane.cache.memory import MemoryCache
from control_plane.cache.tiered import TieredCache
from face_analysis.client import AnalysisResult


def make_result(n: int = 3, dim: int = 512, attributes: bool = True, seed: int = 0) -> AnalysisResult:
    rng = np.random.default_rng(seed)
    return AnalysisResult(
        boxes=rng.random((n, 4), dtype=np.float32) * 640,
        scores=rng.random(n, dtype=np.float32),
        landmarks=rng.random((n, 5, 2), dtype=np.float32) * 640,
        embeddings=rng.standard_normal((n, dim), dtype=np.float32),
        gender=rng.integers(0, 2, n, dtype=np.int32) if attributes else None,
        age=rng.integers(1, 90, n, dtype=np.int32) if attributes else None,
    )


def assert_identical(a: AnalysisResult, b: AnalysisResult) -> None:
    for name in ("boxes", "scores", "landmarks", "embeddings", "gender", "age"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None, name
            continue
        assert y.dtype == x.dtype and y.shape == x.shape, name
        assert y.tobytes() == x.tobytes(), name  # bit-identical, NaN payloads and signed zeros included


# --- keys


def test_key_is_stable_hex_sha256():
    key = cache_key(b"image", "buffalo_l", {"threshold": 0.5, "max_faces": 10})
    assert key == cache_key(b"image", "buffalo_l", {"max_faces": 10, "threshold": 0.5})
    assert len(key) == 64 and int(key, 16) >= 0


def test_key_depends_on_image_pack_and_options():
    base = cache_key(b"image", "buffalo_l", {"threshold": 0.5})
    assert cache_key(b"image2", "buffalo_l", {"threshold": 0.5}) != base
    assert cache_key(b"image", "antelopev2", {"threshold": 0.5}) != base
    assert cache_key(b"image", "buffalo_l", {"threshold": 0.6}) != base
    assert cache_key(b"image", "buffalo_l", {"threshold": None}) != base
    assert cache_key(b"image", "buffalo_l", {}) != cache_key(b"image", "buffalo_l", {"threshold": None})
    assert cache_key(b"image", "buffalo_l", {"max_faces": 1}) != cache_key(b"image", "buffalo_l", {"max_faces": "1"})


# --- codec


@pytest.mark.parametrize("attributes", [True, False])
def test_codec_round_trip_is_exact(attributes):
    result = make_result(attributes=attributes)
    result.embeddings[0, 0] = np.float32(-0.0)
    result.embeddings[0, 1] = np.float32("nan")
    meta = {"pack": "buffalo_l", "width": 640, "height": 480, "threshold": None, "nested": {"a": [1, 2.5]}}
    decoded, decoded_meta = decode_result(encode_result(result, meta))
    assert_identical(result, decoded)
    assert decoded_meta == meta
    decoded.embeddings[0, 0] = 1.0  # callers get writable arrays


def test_codec_zero_faces():
    result = make_result(n=0, dim=512)
    decoded, meta = decode_result(encode_result(result, {}))
    assert_identical(result, decoded)
    assert len(decoded) == 0 and decoded.embeddings.shape == (0, 512) and meta == {}


def test_codec_rejects_non_json_meta():
    with pytest.raises(CacheCodecError):
        encode_result(make_result(), {"bad": object()})


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: b"",
        lambda d: d[:3],
        lambda d: b"XXXX" + d[4:],
        lambda d: d[:4] + bytes([99]) + d[5:],
        lambda d: d[: len(d) // 2],
        lambda d: d[:9] + b"{" * 20 + d[29:],
        lambda d: d[:5] + struct.pack("<I", 10**9) + d[9:],
        lambda d: d.replace(b'"<f4"', b'"|O8"', 1),
        lambda d: d.replace(b'"shape":[3,4]', b'"shape":[3,9]', 1),
        lambda d: d.replace(b'"shape":[3,4]', b'"shape":[-3,4]', 1),
        lambda d: d.replace(b'"boxes"', b'"boxez"', 1),
        lambda d: b"\x80\x04\x95" + d,  # a pickle prefix
    ],
)
def test_codec_rejects_corrupt_data(mutate):
    data = encode_result(make_result(), {"pack": "p"})
    with pytest.raises(CacheCodecError):
        decode_result(mutate(data))


def test_codec_error_is_a_value_error():
    assert issubclass(CacheCodecError, ValueError)


# --- encryption


def test_encryptor_with_fernet_key_interoperates_with_fernet():
    key = Fernet.generate_key()
    enc = Encryptor.from_secret(key.decode())
    token = enc.encrypt(b"payload")
    assert b"payload" not in token
    assert Fernet(key).decrypt(token) == b"payload"
    assert enc.decrypt(Fernet(key).encrypt(b"x")) == b"x"


def test_encryptor_with_passphrase_is_deterministic_across_instances():
    a, b = Encryptor.from_secret("correct horse battery staple"), Encryptor.from_secret("correct horse battery staple")
    assert b.decrypt(a.encrypt(b"payload")) == b"payload"


def test_encryptor_wrong_key_or_garbage_is_a_codec_error():
    token = Encryptor.from_secret("one passphrase").encrypt(b"payload")
    for other in (Encryptor.from_secret("another passphrase"), Encryptor.from_secret(Fernet.generate_key().decode())):
        with pytest.raises(CacheCodecError):
            other.decrypt(token)
    with pytest.raises(CacheCodecError):
        Encryptor.from_secret("one passphrase").decrypt(b"not a token")


def test_encryptor_absent_without_secret():
    assert Encryptor.from_secret(None) is None
    assert Encryptor.from_secret("") is None


# --- memory tier


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_lru_evicts_least_recently_used():
    cache = MemoryCache(max_items=2, ttl_s=60)
    cache.set("a", b"1")
    cache.set("b", b"2")
    assert cache.get("a") == b"1"  # "b" is now the least recently used
    cache.set("c", b"3")
    assert len(cache) == 2
    assert cache.get("b") is None and cache.get("a") == b"1" and cache.get("c") == b"3"


def test_memory_ttl_expiry():
    clock = Clock()
    cache = MemoryCache(max_items=10, ttl_s=30, clock=clock)
    cache.set("a", b"1")
    clock.now += 29.9
    assert cache.get("a") == b"1"
    clock.now += 0.1
    assert cache.get("a") is None
    assert len(cache) == 0
    cache.set("a", b"2")  # a set restarts the entry's life
    clock.now += 10
    assert cache.get("a") == b"2"


def test_memory_zero_items_disables():
    cache = MemoryCache(max_items=0, ttl_s=30)
    cache.set("a", b"1")
    assert cache.get("a") is None and len(cache) == 0 and not cache.enabled


# --- disk tier


@pytest.fixture
def encryptor() -> Encryptor:
    return Encryptor.from_secret(Fernet.generate_key().decode())


def files_contain(folder: Path, needle: bytes) -> bool:
    return any(needle in p.read_bytes() for p in folder.rglob("*") if p.is_file())


async def test_disk_round_trip_and_encrypted_at_rest(tmp_path, encryptor):
    marker = b"BIOMETRIC-PLAINTEXT-MARKER"
    small = marker + b"small"
    large = marker + b"x" * 100_000  # over diskcache's 32 KiB threshold: stored as a file, not in SQLite
    disk = DiskCache(tmp_path / "cache", encryptor, ttl_s=3600, max_mb=10)
    await disk.set("small", small)
    await disk.set("large", large)
    assert await disk.get("small") == small
    assert await disk.get("large") == large
    assert await disk.get("missing") is None
    assert b"BIOMETRIC" not in disk._cache.get("small")  # what diskcache stores is the Fernet token
    disk.close()
    assert not files_contain(tmp_path / "cache", marker)
    reopened = DiskCache(tmp_path / "cache", encryptor, ttl_s=3600, max_mb=10)
    assert await reopened.get("large") == large
    reopened.close()


async def test_disk_with_another_key_is_a_miss(tmp_path, encryptor):
    disk = DiskCache(tmp_path, encryptor, ttl_s=3600, max_mb=10)
    await disk.set("k", b"value")
    disk.close()
    other = DiskCache(tmp_path, Encryptor.from_secret("another key"), ttl_s=3600, max_mb=10)
    assert await other.get("k") is None
    other.close()


async def test_disk_refuses_pickled_entries(tmp_path, encryptor):
    disk = DiskCache(tmp_path, encryptor, ttl_s=3600, max_mb=10)
    raw = diskcache.Cache(str(tmp_path))  # a plain diskcache on the same directory pickles dicts
    raw.set("k", {"a": 1})
    raw.close()
    assert await disk.get("k") is None
    disk.close()


def test_disk_requires_encryptor(tmp_path):
    with pytest.raises(ValueError, match="encryption"):
        DiskCache(tmp_path, None, ttl_s=3600, max_mb=10)


# --- tiers together


async def test_tiered_promotes_disk_hit_into_memory_and_reports_lookups(tmp_path, encryptor):
    lookups: list[tuple[str, bool]] = []
    disk = DiskCache(tmp_path, encryptor, ttl_s=3600, max_mb=10)
    cache = TieredCache(MemoryCache(10, 60), disk=disk, on_lookup=lambda tier, hit: lookups.append((tier, hit)))

    assert await cache.get("k") == (None, None)
    assert lookups == [("memory", False), ("disk", False)]

    await cache.set("k", b"value")
    lookups.clear()
    assert await cache.get("k") == (b"value", "memory")
    assert lookups == [("memory", True)]

    # A fresh process: empty memory, the entry only on disk.
    lookups.clear()
    second = TieredCache(MemoryCache(10, 60), disk=disk, on_lookup=lambda tier, hit: lookups.append((tier, hit)))
    assert await second.get("k") == (b"value", "disk")
    assert lookups == [("memory", False), ("disk", True)]
    assert second.memory.get("k") == b"value"  # promoted
    lookups.clear()
    assert await second.get("k") == (b"value", "memory")
    assert lookups == [("memory", True)]
    await cache.close()


async def test_tiered_with_memory_only():
    cache = TieredCache(MemoryCache(10, 60))
    assert await cache.get("k") == (None, None)
    await cache.set("k", b"v")
    assert await cache.get("k") == (b"v", "memory")
    await cache.close()


async def test_tiered_round_trips_encoded_results(tmp_path, encryptor):
    result = make_result(n=2, attributes=False)
    key = cache_key(b"jpeg bytes", "test", {"threshold": None})
    cache = TieredCache(MemoryCache(0, 60), disk=DiskCache(tmp_path, encryptor, ttl_s=60, max_mb=10))
    await cache.set(key, encode_result(result, {"pack": "test"}))
    value, tier = await cache.get(key)
    assert tier == "disk"
    decoded, meta = decode_result(value)
    assert_identical(result, decoded)
    assert meta == {"pack": "test"}
    await cache.close()


def test_key_from_a_known_digest_is_the_same_key():
    import hashlib

    from control_plane.cache.keys import cache_key_for_digest

    options = {"detection_threshold": None, "max_faces": 3}
    digest = hashlib.sha256(b"image").hexdigest()
    assert cache_key_for_digest(digest, "test", options) == cache_key(b"image", "test", options)
