"""Route dependencies: the app's services, the caller's identity and scopes, and their rate limit.

Credentials come in `X-API-Key` or `Authorization: Bearer`. 401 when they are missing or wrong, 403 when the key
lacks the route's scope, 429 when the key's bucket (or, for failed attempts, the client address's) is empty.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request, Response

from control_plane.core.errors import ApiError
from control_plane.security.api_keys import SCOPES, ApiKey
from control_plane.services.container import Services

ADMIN_TOKEN_ID = "admin-token"
UNLIMITED = "unlimited"


def _synthetic(key_id: str, name: str, scopes: tuple[str, ...], tier: str) -> ApiKey:
    """A caller that is not a stored key (the admin token; everyone when auth is off)."""
    return ApiKey(key_id, name, scopes, tier, created_at=0.0, last_used_at=None, revoked_at=None)


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a thread hop on every request
    return request.app.state.services


def _credential(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request, services: Services = Depends(get_services)) -> ApiKey:
    s = services.settings
    if not s.auth_required:
        return _synthetic("anonymous", "anonymous", tuple(x for x in SCOPES if x != "admin"), s.default_tier)
    secret = _credential(request)
    if secret is None:
        services.metrics.auth_failures.labels("missing").inc()
        raise ApiError(
            "unauthorized",
            "an API key is required: send it as X-API-Key or Authorization: Bearer",
            headers={"WWW-Authenticate": 'Bearer realm="face-api"'},
        )
    admin = s.admin_token.get_secret_value() if s.admin_token else None
    if admin and hmac.compare_digest(secret.encode(), admin.encode()):
        caller = _synthetic(ADMIN_TOKEN_ID, "admin token", SCOPES, UNLIMITED)
    else:
        key = await services.keys.authenticate(secret)
        if key is None:
            services.metrics.auth_failures.labels("invalid").inc()
            # a flood of wrong keys from one address is limited like any other abuse
            decision = await services.limiter.hit(
                "authfail:" + client_address(request), s.auth_failures_per_minute, s.auth_failures_per_minute
            )
            if not decision.allowed:
                services.metrics.rate_limited.labels("auth_failures").inc()
                raise ApiError("rate_limited", "too many failed authentication attempts", headers=decision.headers())
            raise ApiError(
                "unauthorized",
                "the API key is not valid (unknown or revoked)",
                headers={"WWW-Authenticate": 'Bearer realm="face-api", error="invalid_token"'},
            )
        caller = key
    request.state.key_id = caller.id
    return caller


def require(scope: str):
    """A dependency that authenticates and checks one scope (admin keys hold every scope)."""

    async def check(caller: ApiKey = Depends(authenticate)) -> ApiKey:
        if scope not in caller.scopes and "admin" not in caller.scopes:
            raise ApiError(
                "forbidden",
                f"this key lacks the `{scope}` scope",
                details={"required_scope": scope, "key_scopes": list(caller.scopes)},
            )
        return caller

    return check


async def charge(services: Services, caller: ApiKey, response: Response, cost: int = 1) -> None:
    """Take `cost` units from the caller's bucket (one per image) or refuse with 429."""
    if caller.tier == UNLIMITED:
        return
    tier = services.settings.rate_tiers.get(caller.tier) or services.settings.rate_tiers[services.settings.default_tier]
    decision = await services.limiter.hit("key:" + caller.id, tier.burst, tier.per_minute, cost)
    if not decision.allowed:
        services.metrics.rate_limited.labels(caller.tier).inc()
        if cost > tier.burst:
            raise ApiError(
                "rate_limited",
                f"this request costs {cost} units; the key's tier allows at most {tier.burst} at once",
                details={"cost": cost, "burst": tier.burst},
                headers=decision.headers(),
            )
        raise ApiError(
            "rate_limited",
            f"rate limit of the `{caller.tier}` tier exceeded",
            details={"tier": caller.tier, "retry_after_s": round(decision.retry_after_s, 3)},
            headers=decision.headers(),
        )
    response.headers.update(decision.headers())
