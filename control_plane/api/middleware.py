"""The request context (pure ASGI, so it wraps streaming bodies too): a request id on every request and response,
a `Server-Timing` header (the API's time and the inference plane's share of it), latency by route template and
status for Prometheus, and one JSON access-log line without bodies or credentials."""

from __future__ import annotations

import logging
import re
import time
import uuid

from control_plane.core.logging import request_id_var
from control_plane.core.metrics import Metrics
from control_plane.core.timing import RequestTiming, timing_var

log = logging.getLogger("control_plane.access")
_GOOD_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _GOOD_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        timing = RequestTiming()
        timing_token = timing_var.set(timing)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                    (b"server-timing", timing.header(time.perf_counter() - start)),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, scope["method"], str(status)).observe(elapsed)
            state = scope.get("state") or {}
            log.info(
                "%s %s %d",
                scope["method"],
                template,
                status,
                extra={
                    "event": "request",
                    "method": scope["method"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "key_id": state.get("key_id"),
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )
            request_id_var.reset(token)
            timing_var.reset(timing_token)
