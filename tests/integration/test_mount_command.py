"""`cloudvol mount REMOTE MOUNTPOINT` (issue 9): the mount worker of `serve docker`
run as a foreground command, through real FUSE mounts and a real sshd."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.fixtures.cloudvol_daemon import fuse_mounts_under, running_daemon
from tests.integration.fixtures.polling import wait_for
from tests.integration.fixtures.processes import stop_process_group
from tests.integration.fixtures.sshd import SshdServer, running_sshd
from tests.integration.fixtures.throttled_sftp import subsystem

REPO = Path(__file__).parents[2]


def is_mounted(path: Path) -> bool:
    return str(path) in fuse_mounts_under(path.parent)


def cloudvol(*args: str) -> list[str]:
    return [sys.executable, "-m", "entrypoints.cli", *args]


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes to end, and any FUSE mount left under tmp_path, at the end."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for proc in processes:
        if proc.poll() is None:
            stop_process_group(proc, timeout=10)
    for mountpoint in fuse_mounts_under(tmp_path):
        subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False)


def sftp_remote(server: SshdServer, path: Path) -> str:
    # One 32 KiB write in flight, so an upload through the throttled server lasts.
    return (
        f":sftp,host={server.host},port={server.port},user={server.user},"
        f"key_file={server.key_file},known_hosts_file={server.known_hosts_file},"
        f"concurrency=1,chunk_size=32k:{path}"
    )


def test_mount_of_an_sftp_remote_and_a_sigterm_during_an_upload_loses_nothing(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    with running_sshd(tmp_path / "sshd", subsystem(1024 * 1024)) as server:
        remote = server.data_dir / "m"
        remote.mkdir()
        (remote / "on-server").write_text("from the server\n")
        mountpoint = tmp_path / "mnt"
        mountpoint.mkdir()
        log = tmp_path / "mount.log"
        proc = subprocess.Popen(
            cloudvol(
                "mount", sftp_remote(server, remote), str(mountpoint),
                "--cache-dir", str(tmp_path / "cache"), "--vfs-cache-mode", "writes",
                "--vfs-write-back", "0s", "-v", "--log-file", str(log),
            ),
            cwd=REPO, start_new_session=True,
        )  # fmt: skip
        cleanup.append(proc)
        wait_for(lambda: is_mounted(mountpoint) or proc.poll() is not None, "the mount")
        assert proc.poll() is None, log.read_text()
        assert (mountpoint / "on-server").read_text() == "from the server\n"

        data = os.urandom(6 * 1024 * 1024)  # 6 s at 1 MiB/s: one progress line at 5 s
        (mountpoint / "written").write_bytes(data)
        wait_for(lambda: list(remote.glob(".written.*.partial")), "the upload under way")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: not is_mounted(mountpoint), "the unmount after SIGTERM", 15)
        assert proc.poll() is None, "the uploads are finished before the command exits"
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert (remote / "written").read_bytes() == data
        assert not list(remote.glob(".*.partial"))
        text = log.read_text()
        assert "unmounting, and exiting once the uploads are done" in text
        # While it drains, every 5 s: what is left to upload.
        assert re.search(r"volume mount-mnt-\w+: 1 file\(s\), \d+ byte\(s\) left to upload", text)


def test_mount_daemon_detaches_once_ready_and_shows_in_status(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    (local / "hello").write_text("hi\n")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    with running_daemon(tmp_path / "daemon", f"cloudvolmount{os.getpid()}") as daemon:
        detached = subprocess.run(
            cloudvol(
                "mount", str(local), str(mountpoint), "--daemon",
                "--cache-dir", str(daemon.cache_dir), "--vfs-cache-mode", "writes",
            ),
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert detached.returncode == 0, detached.stderr
        assert is_mounted(mountpoint), "mounted by the time --daemon returns"
        assert (mountpoint / "hello").read_text() == "hi\n"

        status = subprocess.run(
            cloudvol("status", "--json", "--cache-dir", str(daemon.cache_dir)),
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        (volume,) = json.loads(status.stdout)["volumes"]
        assert volume["frontend"] == "mount"
        assert volume["mountpoint"] == str(mountpoint)
        assert volume["worker"]["state"] == "mounted"
        assert volume["remote"] == f":local:{local}"
        assert volume["cache_mode"] == "writes"

        (mountpoint / "new").write_text("through the mount\n")
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=True)
        # Unmounted by anyone: the detached worker uploads what is pending and exits.
        wait_for(lambda: volume["name"] not in daemon.live_worker_pids(), "the worker's exit")
        assert (local / "new").read_text() == "through the mount\n"


def test_mount_refuses_a_bad_flag_before_mounting(tmp_path: Path) -> None:
    done = subprocess.run(
        cloudvol("mount", str(tmp_path), str(tmp_path / "mnt"), "--vfs-cache-mode", "sometimes"),
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "vfs-cache-mode" in done.stderr
