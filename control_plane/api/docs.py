"""OpenAPI helpers: every route documents the one error shape."""

from __future__ import annotations

from control_plane.core.errors import ERROR_CODES
from control_plane.schemas.responses import ErrorResponse


def error_responses(*statuses: int) -> dict:
    wanted = statuses or (400, 401, 403, 413, 415, 422, 429, 503)
    out = {}
    for status in wanted:
        codes = sorted(c for c, st in ERROR_CODES.items() if st == status)
        out[status] = {"model": ErrorResponse, "description": "error codes: " + ", ".join(f"`{c}`" for c in codes)}
    return out
