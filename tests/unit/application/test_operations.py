"""`cloudvol status` and `cloudvol rc` as use cases, through the daemon's container
with fakes for the volumes' ports and the workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from application.operations import Operations, RcError
from entrypoints.daemon_container import DaemonContainer
from tests.fakes.containers import use_daemon_fakes
from tests.fakes.workers import FakeWorkerAdmin

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def worker_stats(name: str, state: str = "mounted") -> dict[str, Any]:
    return {
        "volume": name,
        "pid": 4242,
        "mountpoint": f"/mnt/{name}",
        "state": state,
        "started_at": 1.0,
        "remote": ":local:/data",
        "cache_mode": "writes",
        "cache": {"queue": [{"id": 3, "path": "f", "size": 10}], "dirty_files": 1},
        "remote_traffic": {"bytes_read": 5, "bytes_written": 6},
        "fuse": {"buckets": [], "operations": {}},
    }


async def make(tmp_path: Path, workers: FakeWorkerAdmin) -> tuple[DaemonContainer, Operations]:
    container = DaemonContainer()
    container.config.from_dict(
        {
            "base_dir": str(tmp_path / "volumes"),
            "cache_dir": str(tmp_path / "cache"),
            "version": "9.9",
            "socket_description": "/run/docker/plugins/cloudvol.sock",
        }
    )
    use_daemon_fakes(container)
    container.worker_admin.override(workers)
    service = container.volume_service()
    await service.create("vol", {"type": "sftp", "sftp-host": "h", "sftp-pass": "c2VjcmV0"})
    await service.mount("vol", "c1")
    return container, container.operations()


async def test_status_shows_volumes_workers_and_the_daemon(tmp_path: Path) -> None:
    workers = FakeWorkerAdmin({"vol": worker_stats("vol"), "mount-x": worker_stats("mount-x")})
    _, ops = await make(tmp_path, workers)
    status = await ops.status()
    mount, vol = status["volumes"]  # by name
    assert vol["name"] == "vol" and vol["frontend"] == "docker"
    assert vol["mount_ids"] == ["c1"] and vol["worker"]["state"] == "mounted"
    assert vol["remote"].startswith(":sftp,") and "pass=***" in vol["remote"]
    assert "c2VjcmV0" not in str(status)
    assert vol["cache"]["dirty_files"] == 1 and vol["remote_traffic"]["bytes_written"] == 6
    assert mount["frontend"] == "mount" and mount["mountpoint"] == "/mnt/mount-x"
    daemon = status["daemon"]
    assert daemon["version"] == "9.9"
    assert daemon["admin_socket"] == str(tmp_path / "cache" / "admin.sock")
    assert daemon["state_file"] == str(tmp_path / "cache" / "docker-plugin.state")
    assert daemon["uptime"] >= 0
    assert [v["name"] for v in (await ops.status("vol"))["volumes"]] == ["vol"]
    with pytest.raises(RcError, match="no volume named 'nope'"):
        await ops.status("nope")


async def test_a_volume_without_a_worker_is_shown_without_one(tmp_path: Path) -> None:
    _, ops = await make(tmp_path, FakeWorkerAdmin())
    (vol,) = (await ops.status())["volumes"]
    assert vol["worker"] is None and vol["cache"] is None and vol["cache_mode"] == "off"


async def test_rc_commands_use_rclone_names(tmp_path: Path) -> None:
    workers = FakeWorkerAdmin({"vol": worker_stats("vol")})
    _, ops = await make(tmp_path, workers)
    assert await ops.rc("core/version", {}) == {"version": "9.9"}
    assert await ops.rc("vfs/forget", {}) == {"forgotten": {"vol": ["/"]}}
    assert await ops.rc("vfs/forget", {"volume": "vol", "file": "a/b"}) == {
        "forgotten": {"vol": ["a/b"]}
    }
    assert workers.requests[-1] == ("vol", "forget-path", {"path": "a/b"})
    reply = await ops.rc("vfs/refresh", {"volume": "vol", "dir": "d", "recursive": "true"})
    assert reply == {"result": {"vol": {"dir": "d", "listings": 1}}}
    assert workers.requests[-1] == ("vol", "refresh", {"dir": "d", "recursive": True})
    assert (await ops.rc("vfs/queue", {"volume": "vol"}))["queue"]["vol"][0]["id"] == 3
    assert (await ops.rc("vfs/stats", {}))["vol"]["pid"] == 4242
    reply = await ops.rc("vfs/queue-set-expiry", {"volume": "vol", "id": "3", "expiry": "0"})
    assert reply == {"volume": "vol", "id": 3, "expiry": 0.0}
    assert workers.requests[-1] == ("vol", "expire", {"id": 3, "expiry": 0.0})


@pytest.mark.parametrize(
    ("command", "params", "message"),
    [
        ("vfs/nope", {}, "unknown command 'vfs/nope'; the commands are: core/version"),
        ("vfs/stats", {"volume": "other"}, "no volume named 'other'"),
        ("vfs/stats", {"fs": "x"}, "vfs/stats: unknown parameter"),
        ("vfs/refresh", {"recursive": "maybe"}, "recursive='maybe': expected true or false"),
        ("vfs/queue-set-expiry", {"volume": "vol"}, "needs volume=V and id=N"),
        ("vfs/queue-set-expiry", {"volume": "vol", "id": "x"}, "id='x': expected a int"),
        ("vfs/queue-set-expiry", {"volume": "vol", "id": "1", "expiry": "-1"}, "0 or more"),
    ],
)
async def test_rc_errors_name_what_is_wrong(
    tmp_path: Path, command: str, params: dict[str, str], message: str
) -> None:
    _, ops = await make(tmp_path, FakeWorkerAdmin({"vol": worker_stats("vol")}))
    with pytest.raises(RcError, match=message.replace("(", r"\(").replace("'", "'")):
        await ops.rc(command, params)


async def test_a_worker_refusal_is_an_rc_error(tmp_path: Path) -> None:
    workers = FakeWorkerAdmin({"vol": worker_stats("vol")}, refuse={"expire": "no queued upload"})
    _, ops = await make(tmp_path, workers)
    with pytest.raises(RcError, match="volume 'vol': no queued upload"):
        await ops.rc("vfs/queue-set-expiry", {"volume": "vol", "id": "1"})


async def test_a_volume_not_mounted_has_no_worker_to_ask(tmp_path: Path) -> None:
    _, ops = await make(tmp_path, FakeWorkerAdmin())
    with pytest.raises(RcError, match="has no running worker"):
        await ops.rc("vfs/stats", {"volume": "vol"})
