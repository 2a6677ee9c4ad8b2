"""The plugin protocol's bodies as OpenAPI, for the schema FastAPI generates.

The routes read raw bodies (Docker's content type is not JSON to FastAPI), so the
shapes below are what documents them: what Docker sends to each call and what the
daemon answers. The fuzz tests generate requests from this schema and check every
answer against it, so it must stay true to `adapters.http.app`."""

from __future__ import annotations

from typing import Any

from adapters.http.constants import PLUGIN_CONTENT_TYPE

Schema = dict[str, Any]

_STRING: Schema = {"type": "string"}
_VOLUME: Schema = {
    "type": "object",
    "required": ["Name", "Mountpoint", "CreatedAt", "Status"],
    "properties": {
        "Name": _STRING,
        "Mountpoint": _STRING,
        "CreatedAt": _STRING,
        "Status": {
            "type": "object",
            "properties": {"Mounts": {"type": "array", "items": _STRING}},
        },
    },
}


def _object(required: list[str], **properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


_NAMED = _object(["Name"], Name=_STRING)
_NAMED_WITH_ID = _object(["Name", "ID"], Name=_STRING, ID=_STRING)

# Per call: the request body (None: Docker sends none) and the successful answer.
_CALLS: dict[str, tuple[Schema | None, Schema]] = {
    "Plugin.Activate": (
        None,
        _object(["Implements"], Implements={"type": "array", "items": _STRING}),
    ),
    "VolumeDriver.Create": (
        _object(
            ["Name"],
            Name=_STRING,
            Opts={"type": ["object", "null"], "additionalProperties": _STRING},
        ),
        _object([]),
    ),
    "VolumeDriver.Remove": (_NAMED, _object([])),
    "VolumeDriver.Mount": (_NAMED_WITH_ID, _object(["Mountpoint"], Mountpoint=_STRING)),
    "VolumeDriver.Unmount": (_NAMED_WITH_ID, _object([])),
    "VolumeDriver.Path": (_NAMED, _object(["Mountpoint"], Mountpoint=_STRING)),
    "VolumeDriver.Get": (_NAMED, _object(["Volume"], Volume=_VOLUME)),
    "VolumeDriver.List": (None, _object(["Volumes"], Volumes={"type": "array", "items": _VOLUME})),
    "VolumeDriver.Capabilities": (
        None,
        _object(["Capabilities"], Capabilities=_object(["Scope"], Scope=_STRING)),
    ),
}

_ERROR = _object(["Err"], Err=_STRING)
_ERRORS = {
    400: "a body the protocol never sends",
    413: "a body over the size bound",
    500: "the call failed; `Err` says why",
}


def _content(schema: Schema) -> Schema:
    return {PLUGIN_CONTENT_TYPE: {"schema": schema}}


def documented(call: str) -> dict[str, Any]:
    """Keyword arguments for the route of `call`: its OpenAPI request and answers."""
    request, answer = _CALLS[call]
    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "the call succeeded", "content": _content(answer)},
        **{
            code: {"description": why, "content": _content(_ERROR)} for code, why in _ERRORS.items()
        },
    }
    extra: dict[str, Any] = {}
    if request is not None:
        extra["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": request}},
        }
    return {"responses": responses, "openapi_extra": extra, "operation_id": call}
