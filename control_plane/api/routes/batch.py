"""`/v1/faces/batch`: several images, per-image results and the face x face similarity matrix."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from control_plane.api.bodies import parse_body, request_body_doc
from control_plane.api.deps import charge, get_services, require
from control_plane.api.docs import error_responses
from control_plane.core.errors import ApiError
from control_plane.schemas.requests import BatchOptions, BatchRequest
from control_plane.schemas.responses import BatchResponse
from control_plane.security.api_keys import ApiKey
from control_plane.services.batch import run_batch
from control_plane.services.container import Services
from control_plane.services.images import check_image

router = APIRouter(prefix="/v1/faces", tags=["faces"])


@router.post(
    "/batch",
    response_model=BatchResponse,
    response_model_exclude_unset=True,
    summary="Analyse up to max_batch_images images; a bad image fails only its own slot",
    description="Costs one rate-limit unit per image. `similarity` compares every face found with every other "
    "(at most `max_compare_faces` largest faces per image), so one request can match people across photos.",
    responses=error_responses(),
    openapi_extra=request_body_doc(BatchRequest, multiple=("images",)),
)
async def batch(
    request: Request,
    response: Response,
    caller: ApiKey = Depends(require("batch")),
    services: Services = Depends(get_services),
):
    s = services.settings
    body = await parse_body(request, s.max_body_bytes, BatchRequest, BatchOptions, multiple=("images",))
    opts: BatchOptions = body.options
    slots = body.image_lists["images"]
    if len(slots) > s.max_batch_images:
        raise ApiError(
            "too_many_images",
            f"{len(slots)} images sent; a batch takes at most {s.max_batch_images}",
            details={"max_batch_images": s.max_batch_images},
        )
    items = []
    for i, slot in enumerate(slots):
        if isinstance(slot, ApiError):
            items.append(slot)
            continue
        try:
            items.append(check_image(slot, s.max_image_pixels, f"images[{i}]"))
        except ApiError as exc:
            items.append(exc)
    await charge(services, caller, response, cost=len(items))
    result = await run_batch(
        services.faces,
        items,
        detection_threshold=opts.detection_threshold,
        max_faces=opts.max_faces,
        embedding=opts.return_embedding,
        threshold=opts.match_threshold,
        matrix_faces_per_image=s.max_compare_faces,
    )
    faces = sum(r["result"]["face_count"] for r in result["results"] if r["ok"])
    await services.usage.record(caller.id, "batch", len(items), faces)
    return result
