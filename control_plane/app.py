"""The FastAPI application: `create_app(settings)` wires the services, middleware, error handlers and routes.

uvicorn control_plane.app:app            # settings from FACE_API_* environment variables
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from control_plane.api.bodies import validation_error
from control_plane.api.middleware import RequestContextMiddleware
from control_plane.api.routes import batch, faces, health, keys
from control_plane.core.errors import ApiError
from control_plane.core.settings import Settings, get_settings
from control_plane.services.container import Services, build_services

log = logging.getLogger(__name__)

DESCRIPTION = """
Face detection, recognition and attributes over NVIDIA Triton.

**Authentication**: send an API key as `X-API-Key: <key>` or `Authorization: Bearer <key>`.
**Images**: JSON bodies carry base64 strings or data URLs (`data:image/jpeg;base64,...`); multipart bodies carry
file parts. JPEG, PNG, WebP and BMP.
**Errors** always look like `{"error": {"code": "...", "message": "...", "details": {...}}}`; `code` is stable.
**Rate limits**: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` on every charged response; 429 with
`Retry-After` when the key's bucket is empty. A batch costs one unit per image.
**Caching**: repeated images are answered from the cache (`X-Cache: hit`) with exactly the same body.
"""

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}  # what routing itself raises


def _error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError):
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError):
        return _error_response(validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code)
        if code is None:
            code = "invalid_request" if exc.status_code < 500 else "internal_error"
        return _error_response(ApiError(code, str(exc.detail), status=exc.status_code, headers=exc.headers))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception):
        log.exception("unhandled error", extra={"event": "unhandled"})
        return _error_response(ApiError("internal_error", "an internal error occurred; it has been logged"))


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.default_tier not in settings.rate_tiers:
        raise ValueError(f"FACE_API_DEFAULT_TIER={settings.default_tier!r} is not one of FACE_API_RATE_TIERS")
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await services.start()
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="Face Analysis API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    for module in (faces, batch, keys, health):
        app.include_router(module.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=[
                "X-Request-ID",
                "X-Cache",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "Retry-After",
            ],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware, metrics=services.metrics)
    return app


def __getattr__(name: str):
    # `uvicorn control_plane.app:app` builds the app from the environment on first access, not at import
    if name == "app":
        return create_app()
    raise AttributeError(name)
