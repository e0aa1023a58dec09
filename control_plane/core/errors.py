"""The one error shape of the API, `{"error": {"code", "message", "details"}}`, and its stable codes.

Every failure a client can cause or see is an `ApiError` with a code from `ERROR_CODES`; the codes are part of the
public contract (documented in the OpenAPI description and control_plane/README.md), messages are not.
"""

from __future__ import annotations

from typing import Any

# code -> HTTP status
ERROR_CODES: dict[str, int] = {
    "invalid_request": 422,  # the body or query does not match the schema
    "invalid_json": 400,
    "invalid_base64": 400,
    "invalid_image": 400,
    "unsupported_media_type": 415,
    "image_too_large": 413,
    "payload_too_large": 413,
    "too_many_images": 413,
    "no_face": 422,
    "face_index_out_of_range": 422,
    "invalid_argument": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "rate_limited": 429,
    "pack_mismatch": 409,
    "inference_unavailable": 503,
    "inference_timeout": 504,
    "overloaded": 503,
    "store_unavailable": 503,
    "internal_error": 500,
}


class ApiError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        if code not in ERROR_CODES:
            raise ValueError(f"undocumented error code {code!r}")
        self.code, self.message = code, message
        self.details = details or {}
        self.status = status or ERROR_CODES[code]
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}
