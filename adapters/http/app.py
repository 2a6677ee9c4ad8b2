"""Docker's volume plugin protocol over HTTP: nine POST endpoints.

Docker sends `application/vnd.docker.plugins.v1.x+json` bodies, or none at all,
so the raw body is parsed here rather than by FastAPI's JSON handling. Every reply
carries Docker's plugin content type; an error is `{"Err": message}` with HTTP 500,
as rclone sends it.
"""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures at
# runtime, and the `Service` alias they use is local to create_app.
import json
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from loguru import logger

from adapters.http.redact import redact_options
from application.volume_service import VolumeInfo, VolumeService
from domain.errors import CloudvolError
from domain.state_records import format_rfc3339

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1.1+json"

Body = dict[str, object]
Reply = dict[str, object]


class BadRequest(Exception):
    """The request body is not what the protocol sends."""


def reply(payload: Reply, status_code: int = 200) -> Response:
    return Response(
        content=json.dumps(payload, separators=(",", ":")),
        status_code=status_code,
        media_type=PLUGIN_CONTENT_TYPE,
    )


def _parse_body(raw: bytes) -> Body:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"request body is not JSON: {exc}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _string_field(body: Body, key: str) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{key!r} must be a string")
    return value


def _opts_field(body: Body) -> dict[str, str]:
    opts = body.get("Opts")
    if opts is None:  # Docker sends null when no -o was given
        return {}
    if not isinstance(opts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in opts.items()
    ):
        raise BadRequest("'Opts' must map strings to strings")
    return opts


def _loggable(body: Body) -> Body:
    opts = body.get("Opts")
    if isinstance(opts, dict):
        safe = {str(k): str(v) for k, v in opts.items()}
        return {**body, "Opts": redact_options(safe)}
    return body


def _volume_json(info: VolumeInfo) -> Reply:
    return {
        "Name": info.name,
        "Mountpoint": info.mountpoint,
        "CreatedAt": format_rfc3339(info.created_at),
        "Status": {"Mounts": list(info.mounts)},
    }


Handler = Callable[[Body], Awaitable[Reply]]


async def _dispatch(request: Request, call: str, handler: Handler) -> Response:
    try:
        body = _parse_body(await request.body())
        summary = "".join(
            f" {key}={body[key]!r}" for key in ("Name", "ID") if isinstance(body.get(key), str)
        )
        logger.info("{}{}", call, summary)
        logger.debug("{} request {}", call, _loggable(body))
        result = await handler(body)
    except BadRequest as exc:
        logger.warning("{} bad request: {}", call, exc)
        return reply({"Err": str(exc)}, 400)
    except CloudvolError as exc:
        logger.info("{} failed: {}", call, exc)
        return reply({"Err": str(exc)}, 500)
    except Exception as exc:
        logger.opt(exception=exc).error("{} failed unexpectedly", call)
        return reply({"Err": f"{type(exc).__name__}: {exc}"}, 500)
    logger.debug("{} reply {}", call, result)
    return reply(result)


def create_app(get_service: Callable[[], VolumeService]) -> FastAPI:
    """The plugin API; `get_service` is asked on every call, so a container
    provider (and its overrides in tests) can stand behind it."""
    app = FastAPI(title="cloudvol", docs_url=None, redoc_url=None, openapi_url=None)

    def service_dependency() -> VolumeService:
        return get_service()

    Service = Annotated[VolumeService, Depends(service_dependency)]

    @app.post("/Plugin.Activate")
    async def activate(request: Request) -> Response:
        async def handle(_: Body) -> Reply:
            return {"Implements": ["VolumeDriver"]}

        return await _dispatch(request, "Plugin.Activate", handle)

    @app.post("/VolumeDriver.Create")
    async def create(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            await service.create(_string_field(body, "Name"), _opts_field(body))
            return {}

        return await _dispatch(request, "VolumeDriver.Create", handle)

    @app.post("/VolumeDriver.Remove")
    async def remove(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            await service.remove(_string_field(body, "Name"))
            return {}

        return await _dispatch(request, "VolumeDriver.Remove", handle)

    @app.post("/VolumeDriver.Mount")
    async def mount(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            mountpoint = await service.mount(_string_field(body, "Name"), _string_field(body, "ID"))
            return {"Mountpoint": mountpoint}

        return await _dispatch(request, "VolumeDriver.Mount", handle)

    @app.post("/VolumeDriver.Unmount")
    async def unmount(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            await service.unmount(_string_field(body, "Name"), _string_field(body, "ID"))
            return {}

        return await _dispatch(request, "VolumeDriver.Unmount", handle)

    @app.post("/VolumeDriver.Path")
    async def path(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            return {"Mountpoint": service.path(_string_field(body, "Name"))}

        return await _dispatch(request, "VolumeDriver.Path", handle)

    @app.post("/VolumeDriver.Get")
    async def get(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            return {"Volume": _volume_json(service.get(_string_field(body, "Name")))}

        return await _dispatch(request, "VolumeDriver.Get", handle)

    @app.post("/VolumeDriver.List")
    async def list_volumes(request: Request, service: Service) -> Response:
        async def handle(_: Body) -> Reply:
            return {"Volumes": [_volume_json(info) for info in service.list()]}

        return await _dispatch(request, "VolumeDriver.List", handle)

    @app.post("/VolumeDriver.Capabilities")
    async def capabilities(request: Request, service: Service) -> Response:
        async def handle(_: Body) -> Reply:
            return {"Capabilities": {"Scope": service.capabilities().scope}}

        return await _dispatch(request, "VolumeDriver.Capabilities", handle)

    return app
