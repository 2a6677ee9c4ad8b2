"""The parts of operating a daemon that need no daemon: the admin socket and app,
the status screen, `rc` parameters, the metrics and their address, the FUSE
operation counts and `cloudvol mount`'s names."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from adapters.admin.app import create_admin_app
from adapters.admin.server import AdminSocketError, open_admin_socket
from adapters.fuse.op_stats import LATENCY_BUCKETS, FuseOperationStats
from adapters.metrics.address import parse_metrics_addr
from adapters.metrics.server import DaemonMetrics
from application.operations import RcError
from domain.errors import OptionError
from domain.remote_display import describe_remote
from domain.volume import BackendSpec
from entrypoints.admin_client import AdminUnavailable, call_admin
from entrypoints.cli import main
from entrypoints.mount_command import mount_name, normal_remote
from entrypoints.operate_commands import parse_rc_params
from entrypoints.status_view import human_bytes, render_status

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


STATUS: dict[str, Any] = {
    "daemon": {
        "version": "1.2", "pid": 7, "started_at": 0.0, "uptime": 3725.0,
        "socket": "/run/docker/plugins/cloudvol.sock", "admin_socket": "/c/admin.sock",
        "state_file": "/c/docker-plugin.state", "config_file": None, "cache_dir": "/c",
        "metrics_addr": "127.0.0.1:9401",
    },
    "volumes": [
        {
            "name": "web", "frontend": "docker", "mountpoint": "/v/web", "mount_ids": ["c1"],
            "remote": ":sftp,host=h,pass=***:/srv", "cache_mode": "writes",
            "worker": {"pid": 99, "state": "mounted", "started_at": 0.0},
            "cache": {
                "items": 2, "dirty_files": 1, "dirty_bytes": 3 * 1024 * 1024,
                "used_bytes": 5 * 1024 * 1024, "limit_bytes": None,
                "queue": [{
                    "id": 1, "path": "big", "size": 3 * 1024 * 1024, "state": "uploading",
                    "age": 2.0, "expiry": 0.0, "attempts": 1, "bytes_sent": 1024 * 1024,
                    "rate": 524288.0,
                }],
                "uploads": {
                    "completed": 4, "bytes_uploaded": 4096, "failed": 1, "retried": 1,
                    "last_error": "big: connection lost", "last_error_at": 1.0,
                },
                "reads": {"hits": 3, "misses": 2},
            },
            "remote_traffic": {"bytes_read": 123, "bytes_written": 456},
            "fuse": {
                "buckets": list(LATENCY_BUCKETS),
                "operations": {"read": {
                    "count": 2, "errors": 0, "seconds": 0.002,
                    "buckets": [2] + [0] * len(LATENCY_BUCKETS),
                }},
            },
        }
    ],
}  # fmt: skip


def test_the_status_screen_shows_each_part() -> None:
    console = Console(width=120, record=True)
    console.print(render_status(STATUS, bars=True))
    text = console.export_text()
    for expected in (
        "web", "docker volume", ":sftp,host=h,pass=***:/srv", "writes", "/v/web", "c1",
        "pid 99, mounted", "5.0 MiB used of no limit", "1 file(s), 3.0 MiB",
        "big: 1.0 MiB of 3.0 MiB at 512.0 KiB/s", "1 failed, 1 retried",
        "big: connection lost", "v1.2 (pid 7)", "1h2m5s", "/c/admin.sock",
        "http://127.0.0.1:9401/metrics",
    ):  # fmt: skip
        assert expected in text, expected
    assert human_bytes(0) == "0 B" and human_bytes(1536) == "1.5 KiB"


def test_rc_parameters_are_key_value_pairs() -> None:
    assert parse_rc_params(["volume=v", "dir=a=b"]) == {"volume": "v", "dir": "a=b"}
    with pytest.raises(ValueError, match="expected key=value"):
        parse_rc_params(["volume"])


@pytest.mark.parametrize("addr", ["127.0.0.1:9401", "[::1]:9401", "localhost:0"])
def test_metrics_on_loopback(addr: str) -> None:
    assert parse_metrics_addr(addr, allow_remote=False)[1] in (9401, 0)


def test_metrics_elsewhere_only_when_allowed() -> None:
    with pytest.raises(OptionError, match="--metrics-allow-remote"):
        parse_metrics_addr("0.0.0.0:9401", allow_remote=False)
    assert parse_metrics_addr("0.0.0.0:9401", allow_remote=True) == ("0.0.0.0", 9401)
    with pytest.raises(OptionError, match="expected HOST:PORT"):
        parse_metrics_addr("9401", allow_remote=True)


def test_the_remote_is_shown_without_secrets() -> None:
    backend = BackendSpec("sftp", "/srv", {"host": "h", "pass": "s3cret", "key_file": ""})
    assert describe_remote(backend) == ":sftp,host=h,pass=***:/srv"


def test_fuse_operations_are_counted_in_latency_buckets() -> None:
    stats = FuseOperationStats()
    stats.record("read", 0.0001, failed=False)
    stats.record("read", 2.0, failed=True)
    read = stats.snapshot()["operations"]["read"]
    assert (read["count"], read["errors"]) == (2, 1)
    assert read["buckets"][0] == 1 and read["buckets"][LATENCY_BUCKETS.index(5.0)] == 1


async def test_a_scrape_shows_every_volume_and_the_daemon() -> None:
    async def snapshot() -> dict[str, Any]:
        return STATUS

    metrics = DaemonMetrics(snapshot, lambda: {"started": 3, "exited": 1, "crashed": 0})
    text = (await metrics.render()).decode()
    for line in (
        'cloudvol_remote_read_bytes_total{volume="web"} 123.0',
        'cloudvol_remote_written_bytes_total{volume="web"} 456.0',
        'cloudvol_cache_hits_total{volume="web"} 3.0',
        'cloudvol_cache_misses_total{volume="web"} 2.0',
        'cloudvol_upload_queue_length{volume="web"} 1.0',
        'cloudvol_upload_queue_bytes{volume="web"} 3.145728e+06',
        'cloudvol_uploads_failed_total{volume="web"} 1.0',
        'cloudvol_uploads_retried_total{volume="web"} 1.0',
        'cloudvol_fuse_operations_total{operation="read",volume="web"} 2.0',
        'cloudvol_fuse_operation_duration_seconds_bucket{le="+Inf",operation="read",volume="web"} 2.0',
        "cloudvol_workers_started_total 3.0",
        "cloudvol_workers_exited_total 1.0",
        "cloudvol_workers_crashed_total 0.0",
    ):
        assert line in text, line
    assert all(line.startswith(("#", "cloudvol_")) for line in text.splitlines() if line), (
        "every name is prefixed cloudvol_"
    )


class _Ops:
    async def status(self, volume: str | None = None) -> dict[str, Any]:
        if volume == "nope":
            raise RcError("no volume named 'nope'")
        return {"volumes": [], "daemon": {}}

    async def rc(self, command: str, params: dict[str, object]) -> dict[str, Any]:
        if command != "core/version":
            raise RcError(f"unknown command {command!r}")
        if params:
            raise RcError("core/version: unknown parameter(s)")
        return {"version": "1"}


async def test_the_admin_app_answers_json_and_errors() -> None:
    ops: Any = _Ops()
    app = create_admin_app(lambda: ops)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        assert (await client.get("/status")).json() == {"volumes": [], "daemon": {}}
        assert (await client.get("/status", params={"volume": "nope"})).status_code == 404
        assert (await client.post("/rc/core/version")).json() == {"version": "1"}
        unknown = await client.post("/rc/vfs/nope", json={})
        assert unknown.status_code == 404 and "unknown command" in unknown.json()["error"]
        bad = await client.post("/rc/core/version", json={"x": "1"})
        assert bad.status_code == 400
        not_json = await client.post("/rc/core/version", content=b"{")
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
        # Docker's routes are not here.
        assert (await client.post("/VolumeDriver.List")).status_code in (404, 405)


def test_the_admin_socket_is_mode_0600_and_not_taken_twice(tmp_path: Path) -> None:
    path = str(tmp_path / "admin.sock")
    sock = open_admin_socket(path)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with pytest.raises(AdminSocketError, match="another daemon"):
            open_admin_socket(path)
    finally:
        sock.close()
    open_admin_socket(path).close()  # a stale socket file is replaced
    (tmp_path / "file").write_text("")
    with pytest.raises(AdminSocketError, match="not a socket"):
        open_admin_socket(str(tmp_path / "file"))


def test_the_cli_says_when_no_daemon_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--cache-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "daemon is not running" in err and str(tmp_path / "admin.sock") in err
    with pytest.raises(AdminUnavailable, match="no such socket"):
        call_admin(str(tmp_path / "none.sock"), "GET", "/status")
    assert main(["rc", "vfs/stats", "oops", "--cache-dir", str(tmp_path)]) == 1
    assert "expected key=value" in capsys.readouterr().err


def test_mount_names_are_stable_and_file_safe(tmp_path: Path) -> None:
    name = mount_name(":sftp,host=h:/srv", "/mnt/my data")
    assert name == mount_name(":sftp,host=h:/srv", "/mnt/my data")
    assert name != mount_name(":sftp,host=h:/srv", "/mnt/other")
    assert name.startswith("mount-my-data-") and "/" not in name
    assert normal_remote("rel/dir") == os.path.abspath("rel/dir")
    assert normal_remote("name:path") == "name:path"


def test_mount_refuses_a_bad_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["mount", str(tmp_path), str(tmp_path), "--vfs-cache-mode", "sometimes"])
    assert code == 2
    assert "vfs-cache-mode" in capsys.readouterr().err
    code = main(["mount", str(tmp_path), str(tmp_path), "--daemon-wait", "soon"])
    assert code == 2
    assert "daemon-wait" in capsys.readouterr().err


async def test_the_plugin_api_calls_are_counted_by_endpoint() -> None:
    from fastapi import FastAPI

    async def snapshot() -> dict[str, Any]:
        return {"volumes": []}

    metrics = DaemonMetrics(snapshot, dict)
    app = FastAPI()

    @app.post("/VolumeDriver.List")
    async def volumes() -> dict[str, Any]:
        return {"Volumes": []}

    metrics.instrument(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://plugin") as client:
        await client.post("/VolumeDriver.List")
        await client.post("/no/such/thing")
    text = (await metrics.render()).decode()
    assert 'cloudvol_api_calls_total{endpoint="/VolumeDriver.List",outcome="ok"} 1.0' in text
    assert 'cloudvol_api_calls_total{endpoint="other",outcome="error"} 1.0' in text
    assert 'cloudvol_api_call_duration_seconds_count{endpoint="/VolumeDriver.List"} 1.0' in text


def test_counting_keeps_the_storages_optional_capabilities_visible() -> None:
    from adapters.metrics.counting_storage import CountingStorage
    from application.ports import SupportsHardLinks, SupportsMetadata
    from tests.fakes.storage import MemoryStorage

    memory = MemoryStorage()
    counted = CountingStorage(memory)
    assert isinstance(counted, SupportsMetadata) == isinstance(memory, SupportsMetadata)
    assert isinstance(counted, SupportsHardLinks) == isinstance(memory, SupportsHardLinks)
    assert isinstance(memory, SupportsMetadata)  # so the first check means something
