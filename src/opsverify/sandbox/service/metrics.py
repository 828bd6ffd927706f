"""Prometheus metrics of cronos-ai and the ASGI middleware that records them."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UP = Gauge("cronos_ai_up", "1 while the cronos-ai process is serving.")
REQUEST_DURATION = Histogram(
    "cronos_ai_http_request_duration_seconds",
    "HTTP request duration in seconds.",
    ["method", "route", "status"],
)
REQUESTS = Counter(
    "cronos_ai_http_requests", "HTTP requests answered.", ["method", "route", "status"]
)
ERRORS = Counter("cronos_ai_http_errors", "HTTP requests answered with a 5xx status.", ["route"])

# Paths that matched no route share one label value, so scanners cannot explode cardinality.
UNMATCHED_ROUTE = "unmatched"


class MetricsMiddleware:
    """Times every HTTP request and labels it with its route template, not the raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            # The router stores the matched route in the (shared) scope.
            route = scope.get("route")
            route_label = getattr(route, "path", UNMATCHED_ROUTE)
            labels = (scope["method"], route_label, str(status))
            REQUEST_DURATION.labels(*labels).observe(time.perf_counter() - started)
            REQUESTS.labels(*labels).inc()
            if status >= 500:
                ERRORS.labels(route_label).inc()
