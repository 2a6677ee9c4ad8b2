"""The admin API: `GET /status[?volume=V]` and `POST /rc/<command>` with the
command's parameters as a JSON object. Errors are `{"error": message}` with
HTTP 404 (no such volume or command) or 400 (bad parameters, a worker refused)."""

# No `from __future__ import annotations`: FastAPI evaluates route signatures at runtime.
import json
from collections.abc import Callable

from fastapi import FastAPI, Request, Response

from application.operations import Operations, RcError

JSON = "application/json"


def _reply(payload: object, status_code: int = 200) -> Response:
    return Response(json.dumps(payload), status_code=status_code, media_type=JSON)


def _error(exc: Exception) -> Response:
    text = str(exc)
    missing = text.startswith(("no volume named", "unknown command"))
    return _reply({"error": text}, 404 if missing else 400)


def create_admin_app(get_operations: Callable[[], Operations]) -> FastAPI:
    app = FastAPI(title="cloudvol admin", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/status")
    async def status(volume: str | None = None) -> Response:
        try:
            return _reply(await get_operations().status(volume))
        except RcError as exc:
            return _error(exc)

    @app.post("/rc/{command:path}")
    async def rc(command: str, request: Request) -> Response:
        raw = await request.body()
        try:
            params = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            return _reply({"error": f"parameters are not JSON: {exc}"}, 400)
        if not isinstance(params, dict):
            return _reply({"error": "parameters must be a JSON object"}, 400)
        try:
            return _reply(await get_operations().rc(command, params))
        except RcError as exc:
            return _error(exc)

    return app
