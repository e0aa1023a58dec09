"""Every setting of the control plane, in one typed object read from `FACE_API_*` environment variables.

Lists and mappings are JSON in the environment, e.g.
`FACE_API_CORS_ORIGINS='["https://app.example.com"]'` or
`FACE_API_RATE_TIERS='{"free": {"burst": 10, "per_minute": 60}}'`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, PositiveFloat, PositiveInt, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class RateTier(BaseModel):
    """A token bucket: `burst` requests at once, refilled at `per_minute` (images for batch)."""

    burst: PositiveInt
    per_minute: PositiveFloat


DEFAULT_TIERS = {
    "free": RateTier(burst=10, per_minute=60),
    "standard": RateTier(burst=50, per_minute=600),
    "premium": RateTier(burst=200, per_minute=6000),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACE_API_", env_file=None, extra="ignore")

    # HTTP server
    host: str = "127.0.0.1"
    port: int = 8080
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS (the frontend)")
    max_body_bytes: PositiveInt = 20 * 1024 * 1024
    max_image_pixels: PositiveInt = 40_000_000
    max_batch_images: PositiveInt = 16
    max_compare_faces: PositiveInt = 32

    # Inference plane
    triton_url: str = "127.0.0.1:8001"
    triton_fallback_url: str | None = None
    triton_timeout_s: PositiveFloat = 10.0
    triton_retries: int = Field(2, ge=0)
    triton_retry_backoff_s: PositiveFloat = 0.05
    breaker_failures: PositiveInt = 5
    breaker_reset_s: PositiveFloat = 10.0
    max_in_flight: PositiveInt = 64
    shed_latency_fraction: float = Field(0.5, ge=0, le=1, description="503 new work while answers take longer")

    # Shared state
    redis_url: str | None = None
    redis_timeout_s: PositiveFloat = 0.5
    redis_prefix: str = "fa:"

    # Security
    admin_token: SecretStr | None = None
    auth_required: bool = True
    rate_tiers: dict[str, RateTier] = Field(default_factory=lambda: dict(DEFAULT_TIERS))
    default_tier: str = "standard"
    auth_failures_per_minute: PositiveInt = 30

    # Cache
    cache_ttl_s: PositiveInt = 24 * 3600
    cache_memory_items: int = Field(2048, ge=0)
    cache_encryption_key: SecretStr | None = None
    cache_disk_dir: Path | None = None
    cache_disk_ttl_s: PositiveInt = 30 * 24 * 3600
    cache_disk_max_mb: PositiveInt = 1024

    # Observability
    log_level: str = "INFO"
    log_json: bool = True


@lru_cache
def get_settings() -> Settings:
    return Settings()
