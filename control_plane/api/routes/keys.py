"""Admin endpoints for API keys, and each key's own usage."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from control_plane.api.bodies import parse_json
from control_plane.api.deps import UNLIMITED, authenticate, get_services, require
from control_plane.api.docs import error_responses
from control_plane.core.errors import ApiError
from control_plane.schemas.requests import CreateKeyRequest
from control_plane.schemas.responses import CreatedKey, KeyInfo, UsageResponse
from control_plane.security.api_keys import ApiKey, KeyStoreUnavailable
from control_plane.security.usage import UsageUnavailable
from control_plane.services.container import Services

router = APIRouter(tags=["keys"])
_STORE_DOWN = "the key store (Redis) is unreachable; retry when it is back"


@router.post(
    "/v1/admin/keys",
    response_model=CreatedKey,
    status_code=201,
    summary="Create an API key; the secret is in this response only",
    responses=error_responses(400, 401, 403, 413, 415, 422, 429, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": CreateKeyRequest.model_json_schema()}},
        }
    },
)
async def create_key(
    request: Request, _: ApiKey = Depends(require("admin")), services: Services = Depends(get_services)
):
    # the body is read here, once the caller is known to be an admin, and within FACE_API_MAX_BODY_BYTES
    body: CreateKeyRequest = await parse_json(request, services.settings.max_body_bytes, CreateKeyRequest)
    tiers = services.settings.rate_tiers
    if body.tier not in tiers and body.tier != UNLIMITED:
        raise ApiError(
            "invalid_request",
            f"unknown tier {body.tier!r}",
            details={"tiers": sorted(tiers) + [UNLIMITED]},
        )
    try:
        secret, key = await services.keys.create(body.name, body.scopes, body.tier)
    except KeyStoreUnavailable:
        raise ApiError("store_unavailable", _STORE_DOWN, headers={"Retry-After": "5"}) from None
    return {**key.public(), "secret": secret}


@router.get(
    "/v1/admin/keys",
    response_model=list[KeyInfo],
    summary="List keys (revoked ones included)",
    responses=error_responses(401, 403, 429, 503),
)
async def list_keys(_: ApiKey = Depends(require("admin")), services: Services = Depends(get_services)):
    try:
        return [k.public() for k in await services.keys.list()]
    except KeyStoreUnavailable:
        raise ApiError("store_unavailable", _STORE_DOWN, headers={"Retry-After": "5"}) from None


@router.delete(
    "/v1/admin/keys/{key_id}",
    response_model=KeyInfo,
    summary="Revoke a key at once, on every replica",
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
async def revoke_key(key_id: str, _: ApiKey = Depends(require("admin")), services: Services = Depends(get_services)):
    try:
        if not await services.keys.revoke(key_id):
            raise ApiError("not_found", f"no key {key_id!r}")
        key = await services.keys.get(key_id)
    except KeyStoreUnavailable:
        raise ApiError("store_unavailable", _STORE_DOWN, headers={"Retry-After": "5"}) from None
    return key.public()


@router.get(
    "/v1/usage",
    response_model=UsageResponse,
    tags=["usage"],
    summary="The calling key's requests, images and faces by UTC day and route",
    responses=error_responses(401, 422, 429, 503),
)
async def usage(
    days: int = Query(30, ge=1, le=400),
    caller: ApiKey = Depends(authenticate),
    services: Services = Depends(get_services),
):
    try:
        rows = await services.usage.report(caller.id, days)
    except UsageUnavailable:
        raise ApiError(
            "store_unavailable", "usage counts are unreachable; retry shortly", headers={"Retry-After": "5"}
        ) from None
    totals = {m: sum(r[m] for r in rows) for m in ("requests", "images", "faces")}
    return {"key_id": caller.id, "days": days, "usage": rows, "totals": totals}
