"""The metrics endpoint (`GET /metrics` on `--metrics-addr`), served by hypercorn
beside the plugin API, and the middleware that times the plugin API's calls."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Response
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.metrics.collector import ApiMetrics, VolumeCollector

Snapshot = Callable[[], Awaitable[Mapping[str, Any]]]
Observe = Callable[[str, int, float], None]


class _TimedCalls:
    """Plain ASGI middleware, not Starlette's BaseHTTPMiddleware: that one wraps the
    request's body stream, and a call answered before its body was read (an HTTP
    413) then hung or reset the connection."""

    def __init__(self, app: ASGIApp, observe: Observe) -> None:
        self._app = app
        self._observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started, status = time.monotonic(), 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_and_note)
        finally:
            path = str(scope.get("path", ""))
            # Docker's endpoints only: any other path would add a label value.
            endpoint = path if path.startswith(("/VolumeDriver.", "/Plugin.")) else "other"
            self._observe(endpoint, status, time.monotonic() - started)


class DaemonMetrics:
    """Everything one scrape shows: the daemon's counters and every volume's."""

    def __init__(self, snapshot: Snapshot, worker_counts: Callable[[], Mapping[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.api = ApiMetrics(self.registry)
        self._volumes = VolumeCollector(worker_counts)
        self.registry.register(self._volumes)
        self._snapshot = snapshot

    async def render(self) -> bytes:
        # The workers are asked now, so the numbers are those of this scrape.
        self._volumes.update(await self._snapshot())
        return generate_latest(self.registry)

    def instrument(self, app: FastAPI) -> None:
        """Time every call of `app` (the plugin API) by its path."""
        app.add_middleware(_TimedCalls, observe=self.api.observe)

    def app(self) -> FastAPI:
        app = FastAPI(title="cloudvol metrics", docs_url=None, redoc_url=None, openapi_url=None)

        @app.get("/metrics")
        async def metrics() -> Response:
            return Response(await self.render(), media_type=CONTENT_TYPE_LATEST)

        return app


async def serve_metrics(
    metrics: DaemonMetrics,
    host: str,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[None]],
) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
        config = HypercornConfig()
        config.bind = [f"fd://{sock.detach()}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        logger.info("Prometheus metrics on http://{}:{}/metrics", host, port)
        await serve(metrics.app(), config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]
    finally:
        sock.close()
