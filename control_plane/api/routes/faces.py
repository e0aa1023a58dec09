"""`/v1/faces/detect`, `/v1/faces/analyze`, `/v1/faces/compare`: one or two images per request."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request, Response

from control_plane.api.bodies import parse_body, request_body_doc
from control_plane.api.deps import charge, get_services, require
from control_plane.api.docs import error_responses
from control_plane.schemas.requests import (
    AnalyzeOptions,
    AnalyzeRequest,
    CompareOptions,
    CompareRequest,
    DetectOptions,
    DetectRequest,
)
from control_plane.schemas.responses import AnalyzeResponse, CompareResponse, DetectResponse
from control_plane.security.api_keys import ApiKey
from control_plane.services.comparison import compare
from control_plane.services.container import Services
from control_plane.services.faces import Analysis, analyze_json, detect_json
from control_plane.services.images import check_image

router = APIRouter(prefix="/v1/faces", tags=["faces"])


def cache_headers(response: Response, *analyses: Analysis) -> None:
    tiers = [a.cache_tier for a in analyses]
    response.headers["X-Cache"] = "hit" if all(tiers) else "miss"
    if all(tiers):
        response.headers["X-Cache-Tier"] = ",".join(tiers)


async def _one_image(request, response, caller, services, route, json_model, options_model):
    """Parse, check, charge one unit, analyse (through the cache) and count usage: detect's and analyze's path."""
    s = services.settings
    body = await parse_body(request, s.max_body_bytes, json_model, options_model, single=("image",))
    opts = body.options
    image = check_image(body.images["image"], s.max_image_pixels)
    await charge(services, caller, response)
    analysis = await services.faces.analyze(image, opts.detection_threshold, opts.max_faces)
    cache_headers(response, analysis)
    await services.usage.record(caller.id, route, 1, len(analysis.result))
    return analysis, opts


@router.post(
    "/detect",
    response_model=DetectResponse,
    response_model_exclude_unset=True,
    summary="Detect faces: boxes, scores, 5 landmarks (and gender/age where the pack has them)",
    responses=error_responses(),
    openapi_extra=request_body_doc(DetectRequest, single=("image",)),
)
async def detect(
    request: Request,
    response: Response,
    caller: ApiKey = Depends(require("detect")),
    services: Services = Depends(get_services),
):
    analysis, _ = await _one_image(request, response, caller, services, "detect", DetectRequest, DetectOptions)
    return detect_json(analysis)


@router.post(
    "/analyze",
    response_model=AnalyzeResponse,
    response_model_exclude_unset=True,
    summary="Detect and analyse faces: also gender, age and, on request, the embedding",
    responses=error_responses(),
    openapi_extra=request_body_doc(AnalyzeRequest, single=("image",)),
)
async def analyze(
    request: Request,
    response: Response,
    caller: ApiKey = Depends(require("analyze")),
    services: Services = Depends(get_services),
):
    analysis, opts = await _one_image(request, response, caller, services, "analyze", AnalyzeRequest, AnalyzeOptions)
    return analyze_json(analysis, opts.return_embedding)


@router.post(
    "/compare",
    response_model=CompareResponse,
    response_model_exclude_unset=True,
    summary="Compare the faces of two images: cosine similarity, a 0-100 score and a match decision",
    responses=error_responses(),
    openapi_extra=request_body_doc(CompareRequest, single=("image_a", "image_b")),
)
async def compare_faces(
    request: Request,
    response: Response,
    caller: ApiKey = Depends(require("compare")),
    services: Services = Depends(get_services),
):
    s = services.settings
    body = await parse_body(request, s.max_body_bytes, CompareRequest, CompareOptions, single=("image_a", "image_b"))
    opts: CompareOptions = body.options
    a = check_image(body.images["image_a"], s.max_image_pixels, "image_a")
    b = check_image(body.images["image_b"], s.max_image_pixels, "image_b")
    await charge(services, caller, response)
    analysis_a, analysis_b = await asyncio.gather(
        services.faces.analyze(a, opts.detection_threshold, opts.max_faces),
        services.faces.analyze(b, opts.detection_threshold, opts.max_faces),
    )
    cache_headers(response, analysis_a, analysis_b)
    result = compare(
        analysis_a,
        analysis_b,
        mode=opts.mode,
        threshold=opts.match_threshold,
        max_faces=s.max_compare_faces,
        metrics=services.metrics,
    )
    await services.usage.record(caller.id, "compare", 2, len(analysis_a.result) + len(analysis_b.result))
    return result
