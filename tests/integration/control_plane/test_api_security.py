"""Keys and limits through the real app and the real Redis: 401 vs 403, revocation, tiers, Retry-After."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from control_plane.core.settings import RateTier
from tests.images import encode
from tests.integration.control_plane.conftest import ADMIN

pytestmark = pytest.mark.integration

SMALL = encode(np.full((64, 64, 3), 128, np.uint8), ".png")  # valid, faceless, cheap


def small_form():
    return {"image": ("small.png", SMALL, "image/png")}


async def test_missing_wrong_revoked_and_wrong_scope(api):
    c = api.client
    r = await c.post("/v1/faces/detect", files=small_form())
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await c.post("/v1/faces/detect", files=small_form(), headers={"X-API-Key": "fa_" + "x" * 43})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"

    key = await api.new_key(scopes=["detect"])
    assert (await c.post("/v1/faces/detect", files=small_form(), headers={"X-API-Key": key})).status_code == 200
    r = await c.post("/v1/faces/analyze", files=small_form(), headers={"X-API-Key": key})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert r.json()["error"]["details"]["required_scope"] == "analyze"
    r = await c.get("/v1/admin/keys", headers={"X-API-Key": key})
    assert r.status_code == 403

    listed = (await c.get("/v1/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"})).json()
    assert len(listed) == 1 and "secret" not in listed[0] and key not in str(listed)
    key_id = listed[0]["id"]
    r = await c.delete(f"/v1/admin/keys/{key_id}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200 and r.json()["revoked"] is True
    r = await c.post("/v1/faces/detect", files=small_form(), headers={"X-API-Key": key})
    assert r.status_code == 401
    r = await c.delete("/v1/admin/keys/nope", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_revocation_reaches_every_replica(make_api):
    a = await make_api()
    b = await make_api(redis_prefix=a.settings.redis_prefix)
    key = await a.new_key(scopes=["detect"])
    assert (await b.client.post("/v1/faces/detect", files=small_form(), headers={"X-API-Key": key})).status_code == 200
    key_id = (await a.client.get("/v1/admin/keys", headers={"X-API-Key": ADMIN})).json()[0]["id"]
    await a.client.delete(f"/v1/admin/keys/{key_id}", headers={"X-API-Key": ADMIN})
    assert (await b.client.post("/v1/faces/detect", files=small_form(), headers={"X-API-Key": key})).status_code == 401


async def test_key_creation_validates_tier_and_scopes(api):
    h = {"Authorization": f"Bearer {ADMIN}"}
    r = await api.client.post("/v1/admin/keys", json={"name": "x", "tier": "gold"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = await api.client.post("/v1/admin/keys", json={"name": "x", "scopes": ["root"]}, headers=h)
    assert r.status_code == 422
    r = await api.client.post("/v1/admin/keys", json={"name": "x", "scopes": ["detect"], "tier": "free"}, headers=h)
    assert r.status_code == 201 and r.json()["secret"].startswith("fa_") and r.json()["tier"] == "free"


async def test_tier_limit_is_exact_with_headers(make_api):
    api = await make_api(rate_tiers={"tiny": RateTier(burst=3, per_minute=0.01)}, default_tier="tiny")
    key = await api.new_key(tier="tiny")
    h = {"X-API-Key": key}
    statuses = []
    for _ in range(5):
        r = await api.client.post("/v1/faces/detect", files=small_form(), headers=h)
        statuses.append(r.status_code)
        if r.status_code == 200:
            remaining = int(r.headers["RateLimit-Remaining"])
    assert statuses == [200, 200, 200, 429, 429]
    assert remaining == 0
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1 and r.headers["RateLimit-Limit"] == "3"


async def test_batch_costs_one_unit_per_image(make_api):
    api = await make_api(rate_tiers={"tiny": RateTier(burst=3, per_minute=0.01)}, default_tier="tiny")
    key = await api.new_key(tier="tiny")
    files = [("images", ("a.png", SMALL)), ("images", ("b.png", SMALL))]
    r = await api.client.post("/v1/faces/batch", files=files, headers={"X-API-Key": key})
    assert r.status_code == 200 and r.headers["RateLimit-Remaining"] == "1"
    r = await api.client.post("/v1/faces/batch", files=files, headers={"X-API-Key": key})
    assert r.status_code == 429  # 2 images, 1 unit left: refused whole, nothing consumed
    r = await api.client.post("/v1/faces/detect", files=small_form(), headers={"X-API-Key": key})
    assert r.status_code == 200


async def test_invalid_key_flood_is_limited_per_address(make_api):
    api = await make_api(auth_failures_per_minute=3)
    codes = []
    for _ in range(5):
        r = await api.client.post("/v1/faces/detect", files=small_form(), headers={"X-API-Key": "fa_" + "y" * 43})
        codes.append(r.status_code)
    assert codes == [401, 401, 401, 429, 429]
    assert "Retry-After" in r.headers


async def test_usage_counts_requests_images_and_faces(api):
    key = await api.new_key()
    h = {"X-API-Key": key}
    await api.client.post("/v1/faces/detect", files=small_form(), headers=h)
    await api.client.post("/v1/faces/detect", files=small_form(), headers=h)
    files = [("images", ("a.png", SMALL)), ("images", ("b.png", SMALL)), ("images", ("c.png", SMALL))]
    await api.client.post("/v1/faces/batch", files=files, headers=h)
    body = (await api.client.get("/v1/usage?days=7", headers=h)).json()
    rows = {row["route"]: row for row in body["usage"]}
    assert rows["detect"]["requests"] == 2 and rows["detect"]["images"] == 2 and rows["detect"]["faces"] == 0
    assert rows["batch"]["requests"] == 1 and rows["batch"]["images"] == 3
    assert body["totals"] == {"requests": 3, "images": 5, "faces": 0}
    other = await api.new_key()
    assert (await api.client.get("/v1/usage", headers={"X-API-Key": other})).json()["usage"] == []


async def test_cors_for_the_frontend(make_api):
    api = await make_api(cors_origins=["https://app.example.com"])
    r = await api.client.options(
        "/v1/faces/detect",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key,content-type",
        },
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example.com"
    r = await api.client.options(
        "/v1/faces/detect", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in r.headers


async def test_logs_carry_request_ids_but_no_keys_or_images(api, caplog):
    key = await api.new_key()
    caplog.set_level(logging.INFO)
    r = await api.client.post(
        "/v1/faces/detect", files=small_form(), headers={"X-API-Key": key, "X-Request-ID": "req-1"}
    )
    assert r.headers["X-Request-ID"] == "req-1"
    await api.client.post("/v1/faces/detect", files=small_form(), headers={"X-API-Key": "fa_" + "z" * 43})
    text = "\n".join(str(rec.__dict__) for rec in caplog.records)
    access = [rec for rec in caplog.records if getattr(rec, "event", None) == "request"]
    assert any(getattr(rec, "route", None) == "/v1/faces/detect" and rec.status == 200 for rec in access)
    assert key not in text and "z" * 20 not in text and ADMIN not in text
    assert "iVBOR" not in text  # no base64 PNG
