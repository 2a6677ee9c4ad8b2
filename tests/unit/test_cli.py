"""The command line, and the daemon's serving entrypoint over fakes."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import anyio
import httpx
import pytest

from entrypoints.cli import build_parser, main, settings_from_args
from entrypoints.serve_docker import (
    ServeSettings,
    StartupError,
    bind_plugin_socket,
    is_loopback,
    make_container,
    parse_tcp_addr,
    serve_docker,
)
from tests.fakes.containers import DaemonFakes, use_daemon_fakes
from tests.fakes.daemon import FakeMountManager, FakeStateStore


def _settings(argv: list[str]) -> ServeSettings:
    return settings_from_args(build_parser().parse_args(["serve", "docker", *argv]))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("cloudvol v")


def test_config_path_reaches_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _settings(["--config", "/etc/rclone.conf"]).config_path == "/etc/rclone.conf"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert _settings([]).config_path == str(tmp_path / "cfg" / "cloudvol" / "cloudvol.conf")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    settings = _settings([])
    assert settings.base_dir == "/var/lib/docker-volumes/cloudvol"
    assert settings.cache_dir == str(tmp_path / "xdg" / "cloudvol")
    assert settings.socket_addr == ""
    assert settings.default_socket_path == "/run/docker/plugins/cloudvol.sock"
    assert settings.socket_gid == os.getgid()
    assert settings.log_level == "WARNING"
    assert (settings.no_spec, settings.forget_state) == (False, False)
    # uid, gid and umask default to the process's own.
    assert settings.daemon_defaults["uid"] == str(os.getuid())
    assert settings.daemon_defaults["gid"] == str(os.getgid())
    umask = os.umask(0)
    os.umask(umask)
    assert int(settings.daemon_defaults["umask"], 8) == umask


def test_cache_dir_without_xdg_is_under_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    assert _settings([]).cache_dir == "/home/someone/.cache/cloudvol"


def test_daemon_flags(tmp_path: Path) -> None:
    settings = _settings(
        [
            "--base-dir", str(tmp_path / "b"), "--socket-addr", "localhost:8787",
            "--socket-gid", "123", "--no-spec", "--forget-state", "--cache-dir", str(tmp_path),
            "-vv", "--log-file", str(tmp_path / "log"),
        ]
    )  # fmt: skip
    assert settings.base_dir == str(tmp_path / "b")
    assert settings.socket_addr == "localhost:8787"
    assert settings.socket_gid == 123
    assert settings.no_spec and settings.forget_state
    assert settings.cache_dir == str(tmp_path)
    assert settings.log_level == "DEBUG"
    assert settings.log_file == str(tmp_path / "log")
    assert _settings(["-v"]).log_level == "INFO"


def test_mount_flags_become_volume_defaults() -> None:
    settings = _settings(["--dir-cache-time", "10m", "--read-only", "--uid", "1234"])
    assert settings.daemon_defaults["dir-cache-time"] == "10m"
    assert settings.daemon_defaults["read-only"] == "true"
    assert settings.daemon_defaults["uid"] == "1234"  # a given flag beats the process's


def test_bad_flag_value_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "docker", "--dir-cache-time", "banana"]) == 2
    assert "banana" in capsys.readouterr().err


# -- sockets ------------------------------------------------------------------


def test_unix_socket_mode_group_and_stale_file(tmp_path: Path) -> None:
    path = str(tmp_path / "plugins" / "cloudvol.sock")  # parent made on demand
    stale = socket.socket(socket.AF_UNIX)
    os.makedirs(os.path.dirname(path))
    stale.bind(path)
    stale.close()  # a socket file nobody listens on

    sock = bind_plugin_socket(path, os.getgid())
    try:
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_gid == os.getgid()
        sock.listen()
        # A second daemon must not steal a live socket.
        with pytest.raises(StartupError, match="already listening"):
            bind_plugin_socket(path, os.getgid())
    finally:
        sock.close()


def test_unix_socket_path_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "cloudvol.sock"
    path.write_text("precious")
    with pytest.raises(StartupError, match="not a socket"):
        bind_plugin_socket(str(path), os.getgid())
    assert path.read_text() == "precious"


def test_parse_tcp_addr() -> None:
    assert parse_tcp_addr("localhost:8787") == ("localhost", 8787)
    assert parse_tcp_addr(":8787") == ("", 8787)
    assert parse_tcp_addr("[::1]:80") == ("::1", 80)
    with pytest.raises(StartupError):
        parse_tcp_addr("relative/path.sock")


# -- serve_docker end to end over fakes ---------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _wired(settings: ServeSettings, store: FakeStateStore, mounts: FakeMountManager):  # type: ignore[no-untyped-def]
    container = make_container(settings)
    use_daemon_fakes(container, DaemonFakes(store, mounts))
    return container


def _gone(path: str) -> bool:
    return not os.path.lexists(path)


async def _post(client: httpx.AsyncClient, endpoint: str, body: object) -> httpx.Response:
    with anyio.fail_after(10):
        while True:
            try:
                return await client.post(f"http://plugin/{endpoint}", json=body)
            except httpx.ConnectError:
                await anyio.sleep(0.02)  # not listening yet


@pytest.mark.anyio
async def test_serve_on_unix_socket_restores_and_shuts_down(tmp_path: Path) -> None:
    sock_path = str(tmp_path / "run" / "cloudvol.sock")
    settings = ServeSettings(
        base_dir=str(tmp_path / "v"), cache_dir=str(tmp_path / "c"), socket_addr=sock_path
    )
    record: dict[str, object] = {
        "name": "old", "mountpoint": str(tmp_path / "v" / "old"), "created": "2024-01-01T00:00:00Z",
        "fs": "", "type": "sftp", "path": "/srv", "options": {"sftp-host": "h"}, "mounts": ["c0"],
    }  # fmt: skip
    store, mounts = FakeStateStore([record]), FakeMountManager()
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: serve_docker(settings, container=_wired(settings, store, mounts), stop=stop)
        )
        transport = httpx.AsyncHTTPTransport(uds=sock_path)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await _post(client, "VolumeDriver.List", {})
            assert response.headers["content-type"] == "application/vnd.docker.plugins.v1.1+json"
            assert [v["Name"] for v in response.json()["Volumes"]] == ["old"]
            assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o660
            body = {"Name": "new", "Opts": {"type": "sftp", "sftp-host": "h"}}
            assert (await _post(client, "VolumeDriver.Create", body)).json() == {}
            body = {"Name": "new", "ID": "c1"}
            assert (await _post(client, "VolumeDriver.Mount", body)).status_code == 200
        stop.set()
    assert mounts.ops("mount") == ["old", "new"]  # "old" remounted from the state
    assert mounts.shutdown_calls == 1
    assert [(r["name"], r["mounts"]) for r in store.last] == [("new", []), ("old", [])]
    assert _gone(sock_path)


@pytest.mark.anyio
async def test_serve_on_tcp_writes_and_removes_spec(tmp_path: Path) -> None:
    settings = ServeSettings(
        base_dir=str(tmp_path / "v"),
        cache_dir=str(tmp_path / "c"),
        socket_addr="127.0.0.1:0",
        spec_dir=str(tmp_path / "spec"),
    )
    spec = tmp_path / "spec" / "cloudvol.spec"
    stop = anyio.Event()
    container = _wired(settings, FakeStateStore(), FakeMountManager())
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve_docker(settings, container=container, stop=stop))
        # The spec is written before serve_docker's first await.
        await anyio.wait_all_tasks_blocked()
        url = spec.read_text().strip()
        assert url.startswith("tcp://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url.replace("tcp://", "http://")) as client:
            response = await client.post("/Plugin.Activate")
            assert response.json() == {"Implements": ["VolumeDriver"]}
        stop.set()
    assert not spec.exists()


@pytest.mark.anyio
async def test_failed_state_load_does_not_overwrite_state(tmp_path: Path) -> None:
    class Unreadable(FakeStateStore):
        def load(self) -> list[dict[str, object]]:
            raise PermissionError(13, "Permission denied")

    sock_path = str(tmp_path / "cloudvol.sock")
    settings = ServeSettings(
        base_dir=str(tmp_path / "v"), cache_dir=str(tmp_path / "c"), socket_addr=sock_path
    )
    store = Unreadable()
    with pytest.raises(PermissionError):
        await serve_docker(settings, container=_wired(settings, store, FakeMountManager()))
    assert store.saves == []
    assert _gone(sock_path)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("localhost", True),
     ("", False), ("0.0.0.0", False), ("::", False), ("192.0.2.7", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_local(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
