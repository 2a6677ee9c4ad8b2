"""The plugin API through httpx's ASGI transport, the service over fakes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from loguru import logger

from adapters.http.app import PLUGIN_CONTENT_TYPE
from adapters.http.redact import redact_options
from entrypoints.daemon_container import DaemonContainer
from tests.fakes.containers import use_daemon_fakes

pytestmark = pytest.mark.anyio
DOCKER_REQUEST_TYPE = "application/vnd.docker.plugins.v1.2+json"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def container(tmp_path: Path) -> DaemonContainer:
    container = DaemonContainer()
    container.config.from_dict({"base_dir": str(tmp_path / "v"), "cache_dir": str(tmp_path)})
    use_daemon_fakes(container)
    return container


@pytest.fixture
async def client(container: DaemonContainer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=container.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://plugin") as client:
        yield client


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{level} {message}")
    yield lines
    logger.remove(sink)


async def call(
    client: httpx.AsyncClient, endpoint: str, body: object = None
) -> tuple[int, dict[str, object]]:
    content = b"" if body is None else json.dumps(body).encode()
    response = await client.post(
        f"/{endpoint}", content=content, headers={"Content-Type": DOCKER_REQUEST_TYPE}
    )
    assert response.headers["content-type"] == PLUGIN_CONTENT_TYPE
    return response.status_code, response.json()


async def test_activate_with_no_body(client: httpx.AsyncClient) -> None:
    assert await call(client, "Plugin.Activate") == (200, {"Implements": ["VolumeDriver"]})


async def test_capabilities_and_empty_list(client: httpx.AsyncClient) -> None:
    assert await call(client, "VolumeDriver.Capabilities") == (
        200,
        {"Capabilities": {"Scope": "local"}},
    )
    assert await call(client, "VolumeDriver.List", {}) == (200, {"Volumes": []})


async def test_volume_lifecycle(client: httpx.AsyncClient, tmp_path: Path) -> None:
    mountpoint = str(tmp_path / "v" / "data")
    opts = {"type": "sftp", "sftp-host": "h"}
    assert await call(client, "VolumeDriver.Create", {"Name": "data", "Opts": opts}) == (200, {})
    assert await call(client, "VolumeDriver.Mount", {"Name": "data", "ID": "c1"}) == (
        200,
        {"Mountpoint": mountpoint},
    )
    assert await call(client, "VolumeDriver.Path", {"Name": "data"}) == (
        200,
        {"Mountpoint": mountpoint},
    )

    status, got = await call(client, "VolumeDriver.Get", {"Name": "data"})
    assert status == 200
    volume = got["Volume"]
    assert isinstance(volume, dict)
    assert set(volume) == {"Name", "Mountpoint", "CreatedAt", "Status"}
    assert volume["Name"] == "data" and volume["Mountpoint"] == mountpoint
    assert volume["Status"] == {"Mounts": ["c1"]}
    # RFC 3339 in whole seconds, as Go's time.RFC3339 prints it.
    assert isinstance(volume["CreatedAt"], str)
    assert len(volume["CreatedAt"]) in (20, 25)

    status, listed = await call(client, "VolumeDriver.List")
    assert listed == {"Volumes": [volume]}

    assert await call(client, "VolumeDriver.Remove", {"Name": "data"}) == (
        500,
        {"Err": "volume is in use"},
    )
    assert await call(client, "VolumeDriver.Unmount", {"Name": "data", "ID": "c1"}) == (200, {})
    assert await call(client, "VolumeDriver.Unmount", {"Name": "data", "ID": "c1"}) == (
        500,
        {"Err": "volume is not mounted"},
    )
    assert await call(client, "VolumeDriver.Remove", {"Name": "data"}) == (200, {})
    assert await call(client, "VolumeDriver.Get", {"Name": "data"}) == (
        500,
        {"Err": "volume not found"},
    )


async def test_null_opts_reach_the_parser_as_empty(client: httpx.AsyncClient) -> None:
    assert await call(client, "VolumeDriver.Create", {"Name": "data", "Opts": None}) == (
        500,
        {
            "Err": 'give "remote" (or "fs"), e.g. -o remote=:sftp,host=example.org:/srv, '
            'or "type", e.g. -o type=sftp -o sftp-host=example.org'
        },
    )


async def test_option_error_text_is_unchanged(client: httpx.AsyncClient) -> None:
    body = {"Name": "data", "Opts": {"type": "sftp", "wat": "1"}}
    assert await call(client, "VolumeDriver.Create", body) == (
        500,
        {"Err": 'unsupported backend option "wat"'},
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "request body is not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"Name": 5}', "'Name' must be a string"),
        (b'{"Name": "x", "Opts": {"a": 1}}', "'Opts' must map strings to strings"),
    ],
)
async def test_malformed_requests(client: httpx.AsyncClient, content: bytes, message: str) -> None:
    response = await client.post("/VolumeDriver.Create", content=content)
    assert response.status_code == 400
    assert response.headers["content-type"] == PLUGIN_CONTENT_TYPE
    assert message in response.json()["Err"]


class _Exploding:
    def list(self) -> list[object]:
        raise RuntimeError("boom")


async def test_unexpected_exception_is_typed_and_logged(
    container: DaemonContainer, client: httpx.AsyncClient, log_lines: list[str]
) -> None:
    with container.volume_service.override(_Exploding()):
        status, body = await call(client, "VolumeDriver.List")
    assert (status, body) == (500, {"Err": "RuntimeError: boom"})
    text = "\n".join(log_lines)
    assert "Traceback" in text and "RuntimeError: boom" in text
    # The override is gone: the real service answers again.
    assert await call(client, "VolumeDriver.List") == (200, {"Volumes": []})


async def test_secrets_are_not_logged(client: httpx.AsyncClient, log_lines: list[str]) -> None:
    opts = {
        "type": "sftp",
        "sftp-pass": "hunter2",
        "sftp-key-pem": "-----BEGIN KEY-----",
        "sftp-host": "visible.example",
    }
    await call(client, "VolumeDriver.Create", {"Name": "data", "Opts": opts})
    text = "\n".join(log_lines)
    assert "visible.example" in text
    assert "hunter2" not in text and "BEGIN KEY" not in text
    assert any(line.startswith("INFO VolumeDriver.Create") for line in log_lines)


def test_redact_inline_connection_string_secrets() -> None:
    redacted = redact_options(
        {"remote": ':sftp,host=h,pass="se,cret",token=abc:/srv', "S3_SECRET_ACCESS_KEY": "k"}
    )
    assert redacted == {
        "remote": ":sftp,host=h,pass=***,token=***:/srv",
        "S3_SECRET_ACCESS_KEY": "***",
    }
