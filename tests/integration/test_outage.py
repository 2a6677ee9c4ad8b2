"""Issue 12, fault 1: the SFTP server stops answering (every sshd process
SIGSTOPped: the listener, so no new connection gets an answer, and the session
processes, so the open one goes silent), then comes back (SIGCONT).

With --timeout and --contimeout short, a read fails with EIO within their sum;
writes in cache modes writes and full stay dirty and are uploaded once the server
is back; the worker reconnects on its own; and the temporary file of an upload
the outage (or a killed worker) cut off does not stay on the server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon
from tests.integration.fixtures.fuse_mount import Mounted, MountFactory, fuse_mount, is_mounted
from tests.integration.fixtures.sshd import SshdServer, sshd
from tests.timing import until

__all__ = ["fuse_mount", "sshd"]  # the fixtures, imported for pytest

TIMEOUT, CONTIMEOUT = 2.0, 2.0
BOUNDS = (f"timeout={TIMEOUT:g}s", f"contimeout={CONTIMEOUT:g}s")
SLACK = 4.0  # scheduling on a busy 2-core machine
MiB = 1024 * 1024


def _parent_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            # The command name is in parentheses and may hold spaces.
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def sshd_processes(server: SshdServer) -> list[int]:
    """The server's listener and every process under it (one per connection)."""
    config = str(server.key_file.parent / "sshd_config").encode()
    parents: dict[int, int] = {}
    named: set[int] = set()  # sshd rewrites its command line, keeping the config path
    for pid in filter(str.isdigit, os.listdir("/proc")):
        parent = _parent_of(pid)
        if parent is not None:
            parents[int(pid)] = parent
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if config in f.read():
                    named.add(int(pid))
        except OSError:
            continue
    listeners = [pid for pid in named if parents.get(pid) not in named]
    assert len(listeners) == 1, f"sshd's listener not found: {listeners}"
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found: list[int] = []
    todo = [listeners[0]]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


@contextmanager
def frozen(server: SshdServer) -> Iterator[None]:
    """sshd stops answering (SIGSTOP) until the block ends, however it ends."""
    stopped: list[int] = []
    try:
        for pid in sshd_processes(server):  # the listener first: nothing new starts
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def sftp_args(server: SshdServer, remote: Path, *options: str) -> list[str]:
    args = [
        "type=sftp", f"sftp-host={server.host}", f"sftp-port={server.port}",
        f"sftp-user={server.user}", f"sftp-key-file={server.key_file}", f"path={remote}",
        *options,
    ]  # fmt: skip
    return [arg for option in args for arg in ("--opt", option)]


def temp_files(remote: Path) -> list[str]:
    return sorted(p.name for p in remote.iterdir() if p.name.endswith(".partial"))


def worker_stats(cache_dir: Path) -> dict[str, Any]:
    """The mount worker's `stats` reply, from its control socket."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(str(cache_dir / "control.sock"))
        conn.sendall(b'{"op":"stats"}\n')
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(65536)
            assert chunk, "the worker closed its control socket"
            reply += chunk
    answer: dict[str, Any] = json.loads(reply)
    assert answer.get("ok"), answer
    return answer


def cache_stats(cache_dir: Path) -> dict[str, Any]:
    stats: dict[str, Any] = worker_stats(cache_dir)["stats"]["cache"]
    return stats


def cat(path: Path) -> subprocess.CompletedProcess[bytes]:
    """Read `path` in another process (a hung FUSE read cannot hang the test)."""
    return subprocess.run(["cat", str(path)], capture_output=True, timeout=120, check=False)


@pytest.fixture
def sftp_volume(
    fuse_mount: MountFactory, sshd: SshdServer, tmp_path: Path
) -> Callable[..., tuple[Mounted, Path, Path]]:
    """`sftp_volume(*options)`: a FUSE mount of a fresh directory of the SFTP
    server; returns the mount, that directory on the server's disk, and the
    worker's cache directory (its control socket, and the volume's cache)."""
    count = 0

    def mount(*options: str, remote: Path | None = None) -> tuple[Mounted, Path, Path]:
        nonlocal count
        count += 1
        if remote is None:
            remote = sshd.data_dir / f"vol{count}"
            remote.mkdir()
        cache_dir = tmp_path / "cache"
        args = sftp_args(sshd, remote, *options)
        return fuse_mount(*args, "--cache-dir", str(cache_dir)), remote, cache_dir

    return mount


def test_a_read_on_a_frozen_server_fails_with_eio_within_the_bounds(
    sftp_volume: Callable[..., tuple[Mounted, Path, Path]], sshd: SshdServer
) -> None:
    mounted, remote, _ = sftp_volume(*BOUNDS)
    payload = os.urandom(MiB)
    (remote / "a.bin").write_bytes(payload)
    (remote / "b.bin").write_bytes(payload)
    assert (mounted.mountpoint / "a.bin").read_bytes() == payload  # connected
    assert sorted(os.listdir(mounted.mountpoint)) == ["a.bin", "b.bin"]  # listing cached

    with frozen(sshd):
        started = time.monotonic()
        result = cat(mounted.mountpoint / "b.bin")
        took = time.monotonic() - started
    assert result.returncode != 0
    assert b"Input/output error" in result.stderr, result.stderr
    # Not before the idle timeout, and within it plus one reconnection attempt.
    assert TIMEOUT * 0.5 <= took <= TIMEOUT + CONTIMEOUT + SLACK, took

    # Back: the next read opens a new connection by itself.
    def reads_again() -> bool:
        return cat(mounted.mountpoint / "b.bin").stdout == payload

    until(reads_again, within=30)


@pytest.mark.parametrize("mode", ["writes", "full"])
def test_writes_during_an_outage_are_uploaded_after_it_and_no_temp_file_stays(
    sftp_volume: Callable[..., tuple[Mounted, Path, Path]], sshd: SshdServer, mode: str
) -> None:
    mounted, remote, cache_dir = sftp_volume(
        f"vfs-cache-mode={mode}", "vfs-write-back=0.5s", *BOUNDS
    )
    payload = os.urandom(20 * MiB)
    with open(mounted.mountpoint / "big.bin", "wb") as out:
        # Written from its start: streamed to a temporary file on the server
        # while written, which the outage then cuts off.
        out.write(payload[: 8 * MiB])
        out.flush()
        until(lambda: bool(temp_files(remote)), within=30)
        with frozen(sshd):
            out.write(payload[8 * MiB :])
            out.close()  # the cache takes it: no wait for the server
            # The upload fails (the connection goes silent, no new one answers)
            # and is retried: the file stays dirty in the cache.
            until(lambda: cache_stats(cache_dir)["uploads"]["failed"] >= 2, within=60)
            assert cache_stats(cache_dir)["dirty_files"] == 1
            assert not (remote / "big.bin").exists()
        assert (mounted.mountpoint / "big.bin").stat().st_size == len(payload)

    # Back: uploaded with no action, and the cut-off temporary file removed.
    until(lambda: (remote / "big.bin").exists(), within=90)
    until(lambda: temp_files(remote) == [], within=30)
    assert (remote / "big.bin").read_bytes() == payload
    assert (mounted.mountpoint / "big.bin").read_bytes() == payload


def test_the_temp_file_of_a_killed_worker_is_removed_by_the_next(
    sftp_volume: Callable[..., tuple[Mounted, Path, Path]], sshd: SshdServer
) -> None:
    options = ("vfs-cache-mode=writes", "vfs-write-back=30s", *BOUNDS)
    mounted, remote, _ = sftp_volume(*options)
    payload = os.urandom(12 * MiB)
    fd = os.open(mounted.mountpoint / "big.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        assert os.write(fd, payload) == len(payload)
        until(lambda: bool(temp_files(remote)), within=30)
        left = temp_files(remote)
        mounted.process.kill()  # the worker dies mid-upload
        mounted.process.wait(timeout=10)
    finally:
        with contextlib.suppress(OSError):  # the mount under it is gone
            os.close(fd)
    subprocess.run(["fusermount3", "-u", "-z", str(mounted.mountpoint)], check=False)
    until(lambda: not is_mounted(mounted.mountpoint), within=10)
    assert temp_files(remote) == left  # what the killed worker left

    # The next worker of the volume (same cache) uploads the dirty file and
    # removes the temporary file the killed one recorded.
    again, _, _ = sftp_volume(*options, "vfs-write-back=0.5s", remote=remote)
    until(lambda: (remote / "big.bin").exists(), within=60)
    until(lambda: not set(left) & set(temp_files(remote)), within=30)
    assert temp_files(remote) == []
    assert (remote / "big.bin").read_bytes() == payload
    assert (again.mountpoint / "big.bin").read_bytes() == payload


# --- the plugin daemon during the outage ------------------------------------------------


class PluginApi:
    """Docker's side of the plugin protocol, on the daemon's unix socket."""

    def __init__(self, daemon: CloudvolDaemon) -> None:
        self.client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(daemon.socket)),
            base_url="http://cloudvol",
            timeout=120,  # Docker's own limit for a plugin call
        )

    def call(self, endpoint: str, **body: object) -> tuple[dict[str, Any], float]:
        """The answer to `endpoint` and the seconds it took."""
        started = time.monotonic()
        response = self.client.post(f"/VolumeDriver.{endpoint}", json=body)
        took = time.monotonic() - started
        answer: dict[str, Any] = response.json()
        return answer, took


def sftp_options(server: SshdServer, remote: Path) -> dict[str, str]:
    pairs = server.volume_options(remote)[1::2]  # ["-o", "k=v", ...]
    return dict(pair.split("=", 1) for pair in pairs)


@pytest.fixture
def outage_daemon(tmp_path: Path) -> Iterator[CloudvolDaemon]:
    daemon = CloudvolDaemon(
        driver=f"cloudvoloutage{os.getpid()}",
        base_dir=tmp_path / "volumes",
        cache_dir=tmp_path / "cache",
        log_file=tmp_path / "cloudvol.log",
        extra_args=["--timeout", f"{TIMEOUT:g}s", "--contimeout", f"{CONTIMEOUT:g}s"],
    )
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


def test_the_daemon_answers_for_other_volumes_and_bounds_the_affected_ones(
    outage_daemon: CloudvolDaemon, sshd: SshdServer, tmp_path: Path
) -> None:
    api = PluginApi(outage_daemon)
    (sshd.data_dir / "a").mkdir()
    (sshd.data_dir / "b").mkdir()
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    answer, _ = api.call("Create", Name="hit", Opts=sftp_options(sshd, sshd.data_dir / "a"))
    assert not answer.get("Err"), answer

    # The worker Create started ahead is connected already; without it, the Mount
    # must connect (as after the worker's linger, or a crash).
    until(lambda: "hit" in outage_daemon.live_worker_pids(), within=30)
    os.kill(outage_daemon.live_worker_pids()["hit"], signal.SIGKILL)
    until(lambda: "hit" not in outage_daemon.live_worker_pids(), within=10)

    results: dict[str, tuple[dict[str, Any], float]] = {}

    def affected_calls() -> None:
        results["create"] = api.call(
            "Create", Name="late", Opts=sftp_options(sshd, sshd.data_dir / "b")
        )
        results["mount"] = api.call("Mount", Name="hit", ID="c1")

    with frozen(sshd):
        worker = threading.Thread(target=affected_calls)
        worker.start()
        slowest = 0.0
        n = 0
        while worker.is_alive():
            # Calls about other volumes, while those about the affected one wait.
            n += 1
            for endpoint, body in (
                ("Create", {"Name": f"other{n}", "Opts": {"remote": str(local_dir)}}),
                ("Get", {"Name": f"other{n}"}),
                ("List", {}),
                ("Remove", {"Name": f"other{n}"}),
            ):
                answer, took = api.call(endpoint, **body)
                assert not answer.get("Err"), (endpoint, answer)
                slowest = max(slowest, took)
        worker.join()
    assert n >= 2  # the calls above ran during the affected ones
    assert slowest < 1.0, slowest

    (created, create_took), (mounted, mount_took) = results["create"], results["mount"]
    assert "--contimeout" in created["Err"] and sshd.host in created["Err"], created
    assert create_took <= CONTIMEOUT + SLACK, create_took
    assert mounted["Err"] and sshd.host in mounted["Err"], mounted
    assert mount_took <= TIMEOUT + CONTIMEOUT + 2 * SLACK, mount_took

    # Back: the volume mounts with no operator action.
    answer, _ = api.call("Mount", Name="hit", ID="c2")
    assert not answer.get("Err") and answer["Mountpoint"], answer
    assert not api.call("Unmount", Name="hit", ID="c2")[0].get("Err")
    assert not api.call("Remove", Name="hit")[0].get("Err")
