"""Docker's volume plugin protocol over HTTP: nine POST endpoints.

Docker sends `application/vnd.docker.plugins.v1.x+json` bodies, or none at all,
so the raw body is parsed here rather than by FastAPI's JSON handling. Every reply
carries Docker's plugin content type; an error is `{"Err": message}` with HTTP 500,
as rclone sends it, or 400 for a body the protocol never sends and 413 for one over
`MAX_BODY_BYTES`. Bodies are read up to that bound and no further, so a caller cannot
make the daemon hold an unbounded request in memory.

The routes take the raw request, so FastAPI cannot see the bodies' shape; each route
describes it in the OpenAPI schema (`openapi_extra`), which the fuzz tests generate
requests from. Docker never reads that schema, so it is not served.

Fields the protocol does not define are ignored, as Docker's own plugin helpers and
rclone do: a newer Docker may send more, and refusing them would break every volume.
"""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures at
# runtime, and the `Service` alias they use is local to create_app.
import json
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from loguru import logger
from starlette.exceptions import HTTPException

from adapters.http.constants import PLUGIN_CONTENT_TYPE
from adapters.http.redact import redact_options
from adapters.http.schema import documented
from application.volume_service import VolumeInfo, VolumeService
from domain.errors import CloudvolError
from domain.state_records import format_rfc3339

# Docker's largest request is a Create with its options: a few KiB. The bounds leave
# room for an inline key (`sftp-key-pem`) or a service account's JSON, and no more.
MAX_BODY_BYTES = 256 * 1024
MAX_OPTION_VALUE_BYTES = 64 * 1024

Body = dict[str, object]
Reply = dict[str, object]


class BadRequest(Exception):
    """The request body is not what the protocol sends."""


class BodyTooLarge(Exception):
    """The request body is over `MAX_BODY_BYTES`."""


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class PluginResponse(Response):
    """Every answer, so that the schema documents Docker's content type alone."""

    media_type = PLUGIN_CONTENT_TYPE


def reply(payload: Reply, status_code: int = 200) -> Response:
    return PluginResponse(
        content=json.dumps(payload, separators=(",", ":")), status_code=status_code
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
    if not _valid_unicode(body):
        # JSON's \ud800 escapes decode to lone surrogates, which no file name, log
        # line or state file can hold.
        raise BadRequest("request body holds a string that is not valid Unicode")
    return body


def _valid_unicode(value: object) -> bool:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_valid_unicode(k) and _valid_unicode(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_valid_unicode(item) for item in value)
    return True


def _name_field(body: Body) -> str:
    # Docker names the volume in every call that takes one.
    if "Name" not in body:
        raise BadRequest("'Name' is missing")
    return _string_field(body, "Name")


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
    for key, value in opts.items():
        if len(value.encode()) > MAX_OPTION_VALUE_BYTES:
            raise BadRequest(
                f"option {key!r} is {len(value.encode())} bytes long; "
                f"an option value is at most {MAX_OPTION_VALUE_BYTES} bytes"
            )
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
        body = _parse_body(await _read_body(request))
        summary = "".join(
            f" {key}={body[key]!r}" for key in ("Name", "ID") if isinstance(body.get(key), str)
        )
        logger.info("{}{}", call, summary)
        logger.debug("{} request {}", call, _loggable(body))
        result = await handler(body)
    except BodyTooLarge:
        logger.warning("{} bad request: body over {} bytes", call, MAX_BODY_BYTES)
        too_large = reply({"Err": f"request body is over {MAX_BODY_BYTES} bytes"}, 413)
        # The rest of the body is still on its way: the connection cannot carry another
        # request, so it is closed rather than read to its end.
        too_large.headers["connection"] = "close"
        return too_large
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
    app = FastAPI(
        title="cloudvol",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # Docker never asks; the tests read `app.openapi()`
        default_response_class=PluginResponse,
    )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        # An unknown path or a method other than POST: the protocol's error shape too.
        return reply({"Err": str(exc.detail)}, exc.status_code)

    def service_dependency() -> VolumeService:
        return get_service()

    Service = Annotated[VolumeService, Depends(service_dependency)]

    @app.post("/Plugin.Activate", **documented("Plugin.Activate"))
    async def activate(request: Request) -> Response:
        async def handle(_: Body) -> Reply:
            return {"Implements": ["VolumeDriver"]}

        return await _dispatch(request, "Plugin.Activate", handle)

    @app.post("/VolumeDriver.Create", **documented("VolumeDriver.Create"))
    async def create(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            await service.create(_name_field(body), _opts_field(body))
            return {}

        return await _dispatch(request, "VolumeDriver.Create", handle)

    @app.post("/VolumeDriver.Remove", **documented("VolumeDriver.Remove"))
    async def remove(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            await service.remove(_name_field(body))
            return {}

        return await _dispatch(request, "VolumeDriver.Remove", handle)

    @app.post("/VolumeDriver.Mount", **documented("VolumeDriver.Mount"))
    async def mount(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            mountpoint = await service.mount(_name_field(body), _string_field(body, "ID"))
            return {"Mountpoint": mountpoint}

        return await _dispatch(request, "VolumeDriver.Mount", handle)

    @app.post("/VolumeDriver.Unmount", **documented("VolumeDriver.Unmount"))
    async def unmount(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            await service.unmount(_name_field(body), _string_field(body, "ID"))
            return {}

        return await _dispatch(request, "VolumeDriver.Unmount", handle)

    @app.post("/VolumeDriver.Path", **documented("VolumeDriver.Path"))
    async def path(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            return {"Mountpoint": service.path(_name_field(body))}

        return await _dispatch(request, "VolumeDriver.Path", handle)

    @app.post("/VolumeDriver.Get", **documented("VolumeDriver.Get"))
    async def get(request: Request, service: Service) -> Response:
        async def handle(body: Body) -> Reply:
            return {"Volume": _volume_json(service.get(_name_field(body)))}

        return await _dispatch(request, "VolumeDriver.Get", handle)

    @app.post("/VolumeDriver.List", **documented("VolumeDriver.List"))
    async def list_volumes(request: Request, service: Service) -> Response:
        async def handle(_: Body) -> Reply:
            return {"Volumes": [_volume_json(info) for info in service.list()]}

        return await _dispatch(request, "VolumeDriver.List", handle)

    @app.post("/VolumeDriver.Capabilities", **documented("VolumeDriver.Capabilities"))
    async def capabilities(request: Request, service: Service) -> Response:
        async def handle(_: Body) -> Reply:
            return {"Capabilities": {"Scope": service.capabilities().scope}}

        return await _dispatch(request, "VolumeDriver.Capabilities", handle)

    return app
