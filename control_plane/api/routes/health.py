"""Liveness, readiness, Prometheus metrics and what this deployment serves."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from control_plane.api.deps import get_services
from control_plane.services.container import Services

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the process answers")
async def health():
    return {"status": "ok"}


_READY_EXAMPLE = {
    "status": "unavailable",
    "checks": {
        "triton": {"primary": {"ready": False, "breaker": "open", "error": "connection refused"}},
        "redis": {"configured": True, "up": True},
    },
}


@router.get(
    "/health/ready",
    summary="Readiness: `ready`, `degraded` (serving with a fallback or without Redis) or `unavailable` (503)",
    responses={
        503: {
            "description": "No Triton can serve: the same body as 200, with status `unavailable`",
            "content": {"application/json": {"example": _READY_EXAMPLE}},
        }
    },
)
async def ready(services: Services = Depends(get_services)):
    triton = await services.gateway.readiness()
    redis_ok = await services.redis.ping() if services.redis.configured else None
    services.metrics.redis_up.set(1 if redis_ok else 0)
    redis = {"configured": services.redis.configured, "up": redis_ok}
    if redis_ok is False:
        redis["error"] = services.redis.last_error
    primary_ready = triton["primary"]["ready"]
    any_ready = any(t["ready"] for t in triton.values())
    if not any_ready:
        status = "unavailable"
    elif not primary_ready or redis_ok is False:
        status = "degraded"
    else:
        status = "ready"
    body = {"status": status, "checks": {"triton": triton, "redis": redis}}
    return JSONResponse(body, status_code=503 if status == "unavailable" else 200)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: Services = Depends(get_services)):
    return Response(services.metrics.render(), media_type=services.metrics.content_type)


@router.get("/v1/info", tags=["faces"], summary="The packs served and the request limits")
async def info(services: Services = Depends(get_services)):
    s = services.settings
    return {
        "packs": [
            {
                "pack": p.pack,
                "embedding_size": p.embedding_size,
                "match_threshold": p.match_threshold,
                "attributes": p.attributes,
                "max_faces": p.max_faces,
                "contract_version": p.contract_version,
            }
            for p in services.gateway.known_packs()
        ],
        "limits": {
            "max_body_bytes": s.max_body_bytes,
            "max_image_pixels": s.max_image_pixels,
            "max_batch_images": s.max_batch_images,
            "max_compare_faces": s.max_compare_faces,
        },
        "formats": ["jpeg", "png", "webp", "bmp"],
    }
