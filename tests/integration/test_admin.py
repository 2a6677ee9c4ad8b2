"""Operating a running daemon (issue 9): `cloudvol status`, `cloudvol rc` and the
Prometheus metrics, through the real daemon (driven on its plugin socket as
Docker would), FUSE mounts and sshd."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon
from tests.integration.fixtures.polling import wait_for
from tests.integration.fixtures.processes import free_loopback_port
from tests.integration.fixtures.sshd import SshdServer, running_sshd, sshd
from tests.integration.fixtures.throttled_sftp import subsystem

__all__ = ["sshd"]  # fixture used by name

REPO = Path(__file__).parents[2]
# One SFTP write request of 32 KiB in flight at a time, so upload progress moves evenly.
ONE_AT_A_TIME = {"sftp-concurrency": "1", "sftp-chunk-size": "32k"}


def plugin(daemon: CloudvolDaemon, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon.socket)), timeout=120) as c:
        reply: dict[str, Any] = c.post(f"http://plugin/{endpoint}", json=body).json()
    assert not reply.get("Err"), reply
    return reply


def cloudvol(
    *args: str, cache_dir: Path, as_nobody: bool = False
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "entrypoints.cli", *args, "--cache-dir", str(cache_dir)]
    if as_nobody:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def status_json(daemon: CloudvolDaemon, *volume: str) -> dict[str, Any]:
    done = cloudvol("status", "--json", *volume, cache_dir=daemon.cache_dir)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def rc(daemon: CloudvolDaemon, *args: str) -> dict[str, Any]:
    done = cloudvol("rc", *args, cache_dir=daemon.cache_dir)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def sftp_volume(
    daemon: CloudvolDaemon, server: SshdServer, name: str, remote_dir: Path, **opts: str
) -> Path:
    """Create and mount an SFTP volume of `remote_dir`; its mountpoint."""
    remote_dir.mkdir(exist_ok=True)
    options = {
        "type": "sftp",
        "sftp-host": server.host,
        "sftp-port": str(server.port),
        "sftp-user": server.user,
        "sftp-key-file": str(server.key_file),
        "path": str(remote_dir),
        "vfs-cache-mode": "writes",
        **opts,
    }
    plugin(daemon, "VolumeDriver.Create", {"Name": name, "Opts": options})
    return Path(plugin(daemon, "VolumeDriver.Mount", {"Name": name, "ID": "c1"})["Mountpoint"])


@contextlib.contextmanager
def daemon_with(directory: Path, *args: str) -> Iterator[CloudvolDaemon]:
    """A daemon started with `args` added to the usual flags, cleaned up at exit."""
    d = CloudvolDaemon(
        driver=f"cloudvoladmin{os.getpid()}",
        base_dir=directory / "volumes",
        cache_dir=directory / "cache",
        log_file=directory / "cloudvol.log",
        extra_args=list(args),
    )
    d.start()
    try:
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[CloudvolDaemon]:
    with daemon_with(tmp_path) as d:
        yield d


def test_status_without_a_daemon_prints_the_error(tmp_path: Path) -> None:
    done = cloudvol("status", cache_dir=tmp_path / "cache")
    assert done.returncode == 1
    assert "daemon is not running" in done.stderr
    assert str(tmp_path / "cache" / "admin.sock") in done.stderr
    rc_done = cloudvol("rc", "core/version", cache_dir=tmp_path / "cache")
    assert rc_done.returncode == 1 and "daemon is not running" in rc_done.stderr


def test_the_admin_socket_is_refused_to_a_non_root_user(tmp_path: Path) -> None:
    # The socket in a directory anyone may enter: what refuses is the socket's mode.
    open_dir = Path(f"/run/cloudvol-admin-test-{os.getpid()}")
    open_dir.mkdir(mode=0o755)
    try:
        admin = open_dir / "admin.sock"
        with daemon_with(tmp_path, "--admin-socket", str(admin)) as d:
            wait_for(admin.exists, "the admin socket")
            assert admin.stat().st_mode & 0o777 == 0o600
            root = cloudvol("status", "--json", "--admin-socket", str(admin), cache_dir=d.cache_dir)
            assert root.returncode == 0, root.stderr
            nobody = cloudvol(
                "status", "--admin-socket", str(admin), cache_dir=d.cache_dir, as_nobody=True
            )
            assert nobody.returncode == 1
            assert "permission denied" in nobody.stderr
    finally:
        shutil.rmtree(open_dir, ignore_errors=True)


def test_rc_errors_exit_1(daemon: CloudvolDaemon) -> None:
    unknown = cloudvol("rc", "vfs/nonsense", cache_dir=daemon.cache_dir)
    assert unknown.returncode == 1 and "unknown command 'vfs/nonsense'" in unknown.stderr
    missing = cloudvol("rc", "vfs/stats", "volume=nosuch", cache_dir=daemon.cache_dir)
    assert missing.returncode == 1 and "no volume named 'nosuch'" in missing.stderr
    bad = cloudvol("status", "nosuch", cache_dir=daemon.cache_dir)
    assert bad.returncode == 1 and "no volume named 'nosuch'" in bad.stderr
    assert rc(daemon, "core/version")["version"]


def test_an_upload_held_back_shows_partial_progress_then_completes(tmp_path: Path) -> None:
    size = 10 * 1024 * 1024
    # 1 MiB/s from the client to sftp-server: the 10 MiB upload takes 10 s, and its
    # progress moves by 4 MiB pieces.
    with (
        running_sshd(tmp_path / "sshd", subsystem(1024 * 1024)) as server,
        daemon_with(tmp_path) as daemon,
    ):
        remote = server.data_dir / "vol"
        # One 32 KiB write request in flight: what the uploader has handed over is
        # about what sftp-server has received.
        mountpoint = sftp_volume(
            daemon, server, "slow", remote, **ONE_AT_A_TIME, **{"vfs-write-back": "1s"}
        )
        data = os.urandom(size)
        # Written out of order: sent whole at write-back, not streamed while written.
        with open(mountpoint / "big", "wb") as f:
            f.seek(size - 1024 * 1024)
            f.write(data[-1024 * 1024 :])
            f.seek(0)
            f.write(data[: -1024 * 1024])

        def partial() -> dict[str, Any] | None:
            (volume,) = status_json(daemon, "slow")["volumes"]
            for upload in volume["cache"]["queue"]:
                if upload["state"] == "uploading" and 0 < upload["bytes_sent"] < size:
                    return dict(upload)
            return None

        upload = wait_for(partial, "an upload in progress, partly sent", within=60)
        assert upload["path"] == "big" and upload["size"] == size
        assert upload["rate"] > 0
        screen = cloudvol("status", "slow", cache_dir=daemon.cache_dir)
        assert screen.returncode == 0 and "big:" in screen.stdout, screen.stdout

        def done() -> dict[str, Any] | None:
            (volume,) = status_json(daemon, "slow")["volumes"]
            cache = volume["cache"]
            return volume if not cache["queue"] and cache["dirty_files"] == 0 else None

        volume = wait_for(done, "the upload done", within=60)
        assert volume["cache"]["uploads"]["completed"] == 1
        assert volume["cache"]["uploads"]["bytes_uploaded"] == size
        assert (remote / "big").read_bytes() == data
        assert volume["worker"]["state"] == "mounted"
        assert volume["mount_ids"] == ["c1"]
        assert volume["remote"].startswith(":sftp,") and "host=127.0.0.1" in volume["remote"]


def test_rc_forget_shows_a_change_made_on_the_server(
    daemon: CloudvolDaemon, sshd: SshdServer
) -> None:
    remote = sshd.data_dir / "forget"
    mountpoint = sftp_volume(daemon, sshd, "fg", remote, **{"dir-cache-time": "1h"})
    assert os.listdir(mountpoint) == []
    (remote / "from-server").write_text("made on the server\n")
    assert os.listdir(mountpoint) == []  # the listing is cached for an hour
    reply = rc(daemon, "vfs/forget", "volume=fg", "dir=/")
    assert reply == {"forgotten": {"fg": ["/"]}}
    assert os.listdir(mountpoint) == ["from-server"]
    # vfs/refresh reads a listing again at once.
    (remote / "second").write_text("2\n")
    assert rc(daemon, "vfs/refresh", "volume=fg", "recursive=true")["result"]["fg"]["dir"] == "/"
    assert sorted(os.listdir(mountpoint)) == ["from-server", "second"]


def test_rc_queue_set_expiry_uploads_before_the_write_back_delay(
    daemon: CloudvolDaemon, sshd: SshdServer
) -> None:
    remote = sshd.data_dir / "expiry"
    mountpoint = sftp_volume(daemon, sshd, "ex", remote, **{"vfs-write-back": "1h"})
    (mountpoint / "later").write_text("not before an hour\n")

    def queued() -> list[dict[str, Any]] | None:
        queue: list[dict[str, Any]] = rc(daemon, "vfs/queue", "volume=ex")["queue"]["ex"]
        return queue or None

    (entry,) = wait_for(queued, "the file in the upload queue")
    assert entry["path"] == "later" and entry["state"] == "waiting"
    assert entry["expiry"] > 3000
    assert not (remote / "later").exists()
    reply = rc(daemon, "vfs/queue-set-expiry", "volume=ex", f"id={entry['id']}", "expiry=0")
    assert reply["id"] == entry["id"]
    wait_for(lambda: (remote / "later").exists(), "the upload after queue-set-expiry", 30)
    assert (remote / "later").read_text() == "not before an hour\n"
    stats = rc(daemon, "vfs/stats", "volume=ex")["ex"]
    assert stats["cache"]["uploads"]["completed"] == 1


def _metric(text: str, name: str, volume: str) -> float | None:
    match = re.search(rf'^{name}{{volume="{volume}"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_a_scrape_shows_the_bytes_of_a_known_read_and_write(
    tmp_path: Path, sshd: SshdServer
) -> None:
    port = free_loopback_port()
    with daemon_with(tmp_path, "--metrics-addr", f"127.0.0.1:{port}") as daemon:
        remote = sshd.data_dir / "metrics"
        remote.mkdir()
        (remote / "known-read").write_bytes(os.urandom(50_000))
        mountpoint = sftp_volume(daemon, sshd, "met", remote, **{"vfs-write-back": "0s"})
        assert len((mountpoint / "known-read").read_bytes()) == 50_000
        (mountpoint / "known-write").write_bytes(os.urandom(100_000))
        wait_for(
            lambda: (
                (remote / "known-write").exists()
                and (remote / "known-write").stat().st_size == 100_000
            ),
            "the upload",
        )

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                return str(r.read().decode())

        def uploaded() -> str | None:
            text = scrape()
            return text if _metric(text, "cloudvol_uploads_completed_total", "met") else None

        text = wait_for(uploaded, "the upload counted")
        assert _metric(text, "cloudvol_remote_read_bytes_total", "met") == 50_000
        assert _metric(text, "cloudvol_remote_written_bytes_total", "met") == 100_000
        assert _metric(text, "cloudvol_upload_queue_length", "met") == 0
        assert 'cloudvol_fuse_operations_total{operation="read",volume="met"}' in text
        assert "cloudvol_fuse_operation_duration_seconds_bucket" in text
        assert re.search(r'^cloudvol_api_calls_total\{endpoint="/VolumeDriver.Mount"', text, re.M)
        assert re.search(r"^cloudvol_workers_started_total [1-9]", text, re.M), daemon.log_tail()
        assert "cloudvol_workers_crashed_total 0.0" in text
        # A worker killed while mounted leaves its (dead) mount behind: a crash.
        os.kill(daemon.live_worker_pids()["met"], signal.SIGKILL)
        wait_for(lambda: "cloudvol_workers_crashed_total 1.0" in scrape(), "the crash counted", 15)
        assert re.search(r"^cloudvol_workers_exited_total [1-9]", scrape(), re.M)


def test_metrics_only_on_loopback_unless_allowed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "serve", "docker", "--metrics-addr",
         "0.0.0.0:9401", "--cache-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--metrics-addr" in done.stderr and "--metrics-allow-remote" in done.stderr


def test_while_the_daemon_stops_the_log_tells_what_is_left_to_upload(tmp_path: Path) -> None:
    size = 6 * 1024 * 1024  # 6 s at 1 MiB/s: a progress line at 5 s
    with (
        running_sshd(tmp_path / "sshd", subsystem(1024 * 1024)) as server,
        daemon_with(tmp_path) as daemon,
    ):
        remote = server.data_dir / "vol"
        mountpoint = sftp_volume(
            daemon, server, "stopping", remote, **ONE_AT_A_TIME, **{"vfs-write-back": "1h"}
        )
        data = os.urandom(size)
        (mountpoint / "pending").write_bytes(data)
        assert daemon.stop() == 0  # unmounts every volume; the worker uploads, then exits
        wait_for(lambda: "stopping" not in daemon.live_worker_pids(), "the upload", 60)
        assert (remote / "pending").read_bytes() == data
        log = daemon.log_file.read_text()
        assert re.search(r"volume stopping: 1 file\(s\), \d+ byte\(s\) left to upload", log), log


def test_status_watch_redraws_until_interrupted(daemon: CloudvolDaemon) -> None:
    watch = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "status", "--watch",
         "--cache-dir", str(daemon.cache_dir)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # pytest-xdist's workers ignore SIGINT, and children inherit that: restore it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        # It asks the daemon once a second: by an uptime of 12 s (ample for the
        # command to start, even on a loaded machine) it has redrawn the screen with
        # an uptime of 2 s or more.
        wait_for(lambda: status_json(daemon)["daemon"]["uptime"] > 12, "time to pass", 60)
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=30)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0, err
    assert "admin socket" in out
    uptime = re.search(r"uptime\s+(\d+)s", out)
    assert uptime is not None and int(uptime.group(1)) >= 2, out
