"""The control plane in process (httpx over ASGI, lifespan run) against the real embedded Triton and the machine's
real Redis, each app namespaced by its own key prefix."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from control_plane.app import create_app
from control_plane.core.settings import Settings
from control_plane.services.container import Services
from tests.redis_helpers import SHARED_URL, delete_prefix, unique_prefix

ADMIN = "admin-token-for-tests"


@dataclass
class Api:
    app: object
    client: httpx.AsyncClient
    settings: Settings

    @property
    def services(self) -> Services:
        return self.app.state.services

    async def new_key(self, scopes=("detect", "analyze", "compare", "batch"), tier="standard") -> str:
        r = await self.client.post(
            "/v1/admin/keys",
            json={"name": "test", "scopes": list(scopes), "tier": tier},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert r.status_code == 201, r.text
        return r.json()["secret"]


@pytest.fixture
async def make_api(triton):
    """Build apps: `await make_api(**settings)`; defaults point at the session's Triton and the shared Redis."""
    opened = []

    async def factory(**overrides) -> Api:
        values = {
            "triton_url": triton.grpc_url,
            "redis_url": SHARED_URL,
            "redis_prefix": unique_prefix(),
            "admin_token": ADMIN,
            "triton_timeout_s": 5.0,
            **overrides,
        }
        settings = Settings(**values)
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=30)
        opened.append((lifespan, client, settings))
        return Api(app, client, settings)

    yield factory
    for lifespan, client, settings in opened:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
        if settings.redis_url == SHARED_URL:
            delete_prefix(SHARED_URL, settings.redis_prefix)


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()
