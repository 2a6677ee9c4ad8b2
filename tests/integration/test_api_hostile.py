"""Hostile input on the plugin socket: requests generated from the API's own OpenAPI
schema (schemathesis, valid and invalid bodies), then hand-written abuse. Each gets a
JSON answer of the documented shape, the daemon keeps serving, and nothing appears
outside its base directory."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.http.app import MAX_BODY_BYTES, MAX_OPTION_VALUE_BYTES, create_app
from adapters.http.constants import PLUGIN_CONTENT_TYPE
from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon, running_daemon
from tests.integration.fixtures.polling import wait_until

# The schema is the app's own: the routes are not served, so the app needs no service.
schema = schemathesis.openapi.from_dict(create_app(lambda: None).openapi())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=25,  # per call and mode: about 450 requests, 20 s on a loaded CI machine
    deterministic=True,
    database="none",
)
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,  # a body against the schema gets a 4xx, not a 500
]
BASE_URL = "http://cloudvol"


class Target:
    def __init__(self, daemon: CloudvolDaemon) -> None:
        self.daemon = daemon
        # A connection per request: a server may close one it answered before reading
        # the whole request (as HTTP allows), and a reuse racing that close would be
        # reset; what these tests check is that the daemon answers, not keep-alive.
        self.client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(daemon.socket)),
            base_url=BASE_URL,
            timeout=30,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self.home = daemon.base_dir.parent
        self.home_entries = sorted(p.name for p in self.home.iterdir())

    def post(self, call: str, content: bytes | str, **headers: str) -> httpx.Response:
        return self.client.post(f"/{call}", content=content, headers=headers)

    def assert_unharmed(self) -> None:
        assert self.daemon.proc is not None and self.daemon.proc.poll() is None, (
            self.daemon.log_tail()
        )
        listed = self.post("VolumeDriver.List", "{}")
        assert listed.status_code == 200, listed.text
        # Nothing beside the daemon's own directories, and under the base directory
        # nothing but one directory per volume Docker could have named.
        assert sorted(p.name for p in self.home.iterdir()) == self.home_entries
        if self.daemon.base_dir.exists():
            for entry in self.daemon.base_dir.iterdir():
                assert entry.is_dir() and "/" not in entry.name and ".." not in entry.name


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with running_daemon(tmp_path_factory.mktemp("hostile"), f"cloudvolfuzz{os.getpid()}") as d:
        target = Target(d)
        yield target
        target.client.close()


def assert_json_answer(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"] == PLUGIN_CONTENT_TYPE
    body = response.json()
    assert isinstance(body, dict)
    if response.status_code != 200:
        assert isinstance(body.get("Err"), str) and body["Err"], body
    return body


@schema.parametrize()
def test_generated_requests_get_documented_answers(case: schemathesis.Case, target: Target) -> None:
    sent = case.as_transport_kwargs(base_url=BASE_URL)
    body = sent.get("json", None)
    content = json.dumps(body).encode() if "json" in sent else sent.get("data")
    response = target.client.request(
        sent["method"], sent["url"], headers=sent.get("headers"), content=content
    )
    case.validate_response(response, checks=CHECKS)
    assert_json_answer(response)
    target.assert_unharmed()


NAMES = {
    "slash": "a/b",
    "parent": "..",
    "dotdot inside": "a..b",
    "NUL": "a\x00b",
    "newline": "a\nb",
    "1000 characters": "a" * 1000,
    "absolute": "/etc",
}


@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
@pytest.mark.parametrize("call", ["Create", "Mount", "Remove", "Get", "Path", "Unmount"])
def test_hostile_names_are_refused(target: Target, call: str, name: str) -> None:
    body = {"Name": name, "ID": "x", "Opts": {"type": "local", "path": "/tmp"}}
    response = target.post(f"VolumeDriver.{call}", json.dumps(body))
    assert response.status_code in (400, 500)
    err = str(assert_json_answer(response)["Err"])
    assert "volume name" in err or "no such volume" in err.lower() or "not found" in err.lower()
    target.assert_unharmed()


MALFORMED = {
    "not JSON": b'{"Name": ',
    "a list": b'["Name"]',
    "a string": b'"vol"',
    "Name a number": b'{"Name": 7}',
    "Name missing": b'{"Opts": {}}',
    "Opts a list": b'{"Name": "v", "Opts": ["a"]}',
    "Opts value a number": b'{"Name": "v", "Opts": {"type": 1}}',
    "invalid UTF-8": b'{"Name": "\xff\xfe"}',
    "lone surrogate": b'{"Name": "v", "Opts": {"type": "\\ud800"}}',
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bodies_get_a_400(target: Target, raw: bytes) -> None:
    response = target.post("VolumeDriver.Create", raw)
    assert response.status_code == 400, response.text
    assert_json_answer(response)
    target.assert_unharmed()


def test_unknown_fields_are_ignored_as_docker_may_add_some(target: Target) -> None:
    response = target.post("VolumeDriver.Get", json.dumps({"Name": "absent", "Future": [1]}))
    assert response.status_code == 500
    assert str(assert_json_answer(response)["Err"]) == "volume not found"


def test_a_body_over_the_bound_is_refused_unread(target: Target) -> None:
    huge = json.dumps({"Name": "big", "Opts": {"sftp-host": "h" * 1_000_000}})
    response = target.post("VolumeDriver.Create", huge)
    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in str(assert_json_answer(response)["Err"])
    # A caller that lies about its length, streaming more than it declared, is cut off too.
    chunks = (b"x" * 65536 for _ in range(64))
    streamed = target.client.post("/VolumeDriver.Create", content=chunks)
    assert streamed.status_code == 413
    target.assert_unharmed()
    assert not (target.daemon.base_dir / "big").exists()


def test_an_option_value_over_the_bound_is_refused_by_name(target: Target) -> None:
    body = {"Name": "long", "Opts": {"type": "sftp", "sftp-host": "h" * 100_000}}
    response = target.post("VolumeDriver.Create", json.dumps(body))
    assert response.status_code == 400
    err = str(assert_json_answer(response)["Err"])
    assert "'sftp-host'" in err and str(MAX_OPTION_VALUE_BYTES) in err
    target.assert_unharmed()


def test_wrong_methods_and_paths_get_json(target: Target) -> None:
    for response in (
        target.client.get("/VolumeDriver.List"),
        target.client.post("/VolumeDriver.Nope", content=b"{}"),
        target.client.post("/../../etc/passwd", content=b"{}"),
    ):
        assert response.status_code in (404, 405)
        assert "Err" in assert_json_answer(response)
    target.assert_unharmed()


def test_the_socket_is_group_accessible_only(target: Target) -> None:
    mode = Path(target.daemon.socket).stat().st_mode & 0o777
    assert mode == 0o660


def serve_on(tmp_path: Path, addr: str, *more: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "serve", "docker", "--socket-addr", addr,
         "--no-spec", "--base-dir", str(tmp_path / "v"), "--cache-dir", str(tmp_path / "c"),
         "--log-file", str(tmp_path / "log"), "-v", *more],
        cwd=Path(__file__).parents[2], start_new_session=True,
    )  # fmt: skip


def test_a_non_loopback_tcp_address_is_refused(tmp_path: Path) -> None:
    proc = serve_on(tmp_path, "0.0.0.0:0")
    assert proc.wait(timeout=60) != 0
    log = (tmp_path / "log").read_text()
    assert "not a loopback address" in log and "--allow-remote-api" in log


def test_allow_remote_api_listens_and_warns(tmp_path: Path) -> None:
    proc = serve_on(tmp_path, "0.0.0.0:0", "--allow-remote-api")
    try:
        log = tmp_path / "log"
        wait_until(
            "the daemon serves and warns",
            lambda: log.exists() and "beyond this host's loopback" in log.read_text()
            and "serving the Docker volume plugin API" in log.read_text(),
            timeout=60,
        )  # fmt: skip
        assert proc.poll() is None
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0


def test_socket_gid_owns_the_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "plugin.sock"
    proc = serve_on(tmp_path, str(path), "--socket-gid", "12345")
    try:
        wait_until("the socket exists", path.exists, timeout=60)
        st = path.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, 12345)
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
