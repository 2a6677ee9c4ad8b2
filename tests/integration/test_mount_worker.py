"""WorkerMountManager with real FUSE mounts served by real worker processes over a
local-directory volume (`-o remote=<dir>`).

Blocking file and process calls in these async tests are deliberate: the FUSE
server is another process, so blocking here cannot deadlock it."""
# ruff: noqa: ASYNC220, ASYNC221, ASYNC240

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from loguru import logger

from adapters.mounting.manager import WorkerMountManager
from adapters.mounting.protocol import WorkerJob, parse_mountinfo, worker_paths
from adapters.mounting.system import call_worker, is_mounted, is_stale, lock_holder
from domain.errors import MountFailed
from domain.volume import BackendSpec, Volume, VolumeSpec
from tests.integration.fixtures.polling import holds_within

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.base = tmp / "mnt"
        self.cache = tmp / "cache"
        self.remote = tmp / "remote"
        for d in (self.base, self.cache, self.remote):
            d.mkdir()
        self.managers: list[WorkerMountManager] = []

    def manager(self, **kw: float) -> WorkerMountManager:
        m = WorkerMountManager(str(self.base), str(self.cache), {}, "DEBUG", None, **kw)
        self.managers.append(m)
        return m

    def volume(self, name: str = "vol", remote: Path | None = None) -> Volume:
        root = str(remote or self.remote)
        return Volume(
            name=name,
            mountpoint=str(self.base / name),
            created_at=datetime.now(UTC),
            options={"remote": root},
            spec=VolumeSpec(BackendSpec("local", root)),
        )

    def holder(self, name: str = "vol") -> int | None:
        return lock_holder(worker_paths(str(self.cache), name).lock)


SETTLE_TIME = 10.0


async def _settled_state(sock: str, wanted: str) -> str:
    """The worker's state once it is `wanted`, or the last one seen after
    SETTLE_TIME: after an unmount the worker drains (nothing, here) before it says
    idle."""
    end = time.monotonic() + SETTLE_TIME
    state = str((await call_worker(sock, "status"))["state"])
    while state != wanted and time.monotonic() < end:
        await anyio.sleep(0.05)
        state = str((await call_worker(sock, "status"))["state"])
    return state


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Our own unreaped child still answers kill(0); a zombie counts as gone.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state == "Z"
    return True


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    for m in e.managers:
        m.close()
    # Never leave a worker or a FUSE mount behind, whatever the test did.
    workers = e.cache / "workers"
    if workers.is_dir():
        for lock in workers.glob("*.lock"):
            pid = lock_holder(str(lock))
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    mounts = Path("/proc/self/mountinfo").read_text()
    for entry in reversed(parse_mountinfo(mounts)):
        if entry.mountpoint.startswith(str(tmp_path)):
            subprocess.run(["fusermount3", "-u", "-z", entry.mountpoint], check=False)


@pytest.fixture
def logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}", level="DEBUG")
    yield lines
    logger.remove(sink)


async def test_mount_serves_the_directory_and_the_worker_stays_for_the_next_one(
    env: Env,
) -> None:
    (env.remote / "hello.txt").write_text("hello from the remote\n")
    manager, volume = env.manager(), env.volume()
    await manager.prepare(volume)
    assert oct(os.stat(volume.mountpoint).st_mode & 0o777) == "0o755"

    await manager.mount(volume)
    mp = Path(volume.mountpoint)
    assert is_mounted(str(mp))
    assert (mp / "hello.txt").read_text() == "hello from the remote\n"

    (mp / "written.txt").write_bytes(b"through FUSE")
    assert (env.remote / "written.txt").read_bytes() == b"through FUSE"

    pid = manager.worker_pid("vol")
    assert pid is not None and env.holder() == pid
    assert os.getsid(pid) == pid  # its own session: it outlives a daemon crash
    sock = worker_paths(str(env.cache), "vol").socket
    assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
    status = await call_worker(sock, "status")
    assert status == {
        "ok": True,
        "pid": pid,
        "mountpoint": volume.mountpoint,
        "state": "mounted",
        "volume": "vol",
        "pending_uploads": 0,
    }
    assert (await call_worker(sock, "forget"))["ok"] is True

    await manager.unmount(volume)
    assert not is_mounted(volume.mountpoint)
    assert manager.worker_pid("vol") is None
    # Unmounted, it waits for the next Mount (Docker mounts twice per `docker run`).
    assert await _settled_state(sock, "idle") == "idle"
    assert env.holder() == pid

    await manager.mount(volume)
    assert manager.worker_pid("vol") == pid  # the same worker, mounted again
    assert (mp / "written.txt").read_bytes() == b"through FUSE"
    (mp / "again.txt").write_bytes(b"second mount")
    assert (env.remote / "again.txt").read_bytes() == b"second mount"

    await manager.unmount(volume)
    assert not is_mounted(volume.mountpoint)
    await manager.discard(volume)  # the volume goes: its worker does not wait any more
    assert holds_within(lambda: _gone(pid)), "the worker did not exit after the volume went"
    assert env.holder() is None
    assert not mp.exists()


async def test_an_idle_worker_exits_after_lingering(env: Env) -> None:
    # A linger long enough that a loaded machine cannot end it between the
    # unmount and the check that the worker is still there.
    linger = 5.0
    manager, volume = env.manager(linger=linger), env.volume()
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    assert pid is not None
    await manager.unmount(volume)
    assert not _gone(pid)
    gone = holds_within(lambda: _gone(pid), timeout=linger + 20)
    assert gone, "the worker did not exit after lingering"
    assert env.holder() is None
    await manager.mount(volume)  # a new worker then serves the next Mount
    new_pid = manager.worker_pid("vol")
    assert new_pid is not None and new_pid != pid
    await manager.unmount(volume)


async def test_a_worker_with_another_job_is_not_mounted_again(env: Env) -> None:
    """A daemon restarted with other flags gets a worker that runs them."""
    manager, volume = env.manager(), env.volume()
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    await manager.unmount(volume)
    changed = env.manager()
    changed.daemon_defaults = {"dir-cache-time": "1s"}
    await changed.mount(volume)
    new_pid = changed.worker_pid("vol")
    assert new_pid is not None and new_pid != pid
    assert pid is not None
    assert holds_within(lambda: _gone(pid))  # told to retire, it lets go of the volume and exits
    await changed.unmount(volume)
    await changed.discard(volume)


async def test_missing_remote_fails_with_the_real_cause(env: Env) -> None:
    manager = env.manager()
    volume = env.volume(remote=env.tmp / "does-not-exist")
    await manager.prepare(volume)
    with pytest.raises(MountFailed) as info:
        await manager.mount(volume)
    message = str(info.value)
    assert "does-not-exist" in message and "does not exist" in message
    assert "exit status" not in message
    assert not is_mounted(volume.mountpoint)
    assert holds_within(lambda: env.holder() is None)
    assert manager.worker_pid("vol") is None


async def test_non_empty_mountpoint_is_refused(env: Env) -> None:
    manager, volume = env.manager(), env.volume()
    await manager.prepare(volume)
    Path(volume.mountpoint, "stray").write_text("x")
    with pytest.raises(MountFailed, match="not empty"):
        await manager.mount(volume)
    assert not is_mounted(volume.mountpoint)


async def test_mount_timeout_kills_the_worker_and_says_so(env: Env) -> None:
    manager, volume = env.manager(linger=0), env.volume()
    await manager.prepare(volume)
    # A first mount, so the fork server has done its imports (it answers in
    # milliseconds) and only the worker's start can be too slow.
    await manager.mount(volume)
    await manager.unmount(volume)
    assert holds_within(lambda: env.holder() is None)
    manager.mount_timeout = 0.01
    with pytest.raises(MountFailed, match=r"did not report ready within .* killed"):
        await manager.mount(volume)
    assert holds_within(lambda: env.holder() is None)
    assert not is_mounted(volume.mountpoint)


async def test_second_mount_reuses_the_running_worker(env: Env) -> None:
    manager, volume = env.manager(), env.volume()
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    await manager.mount(volume)
    assert manager.worker_pid("vol") == pid

    # Another manager (a second daemon) finds the worker instead of starting one.
    other = env.manager()
    await other.mount(volume)
    assert other.worker_pid("vol") == pid
    assert env.holder() == pid

    # And a worker started by hand for the same volume refuses, saying who serves it.
    job = WorkerJob(
        name="vol",
        mountpoint=volume.mountpoint,
        options=dict(volume.options),
        defaults={},
        cache_dir=str(env.cache),
        control_socket=worker_paths(str(env.cache), "vol").socket,
    )
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.mount_worker"],
        input=job.to_json().encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert f"already served by mount worker pid {pid}".encode() in done.stdout
    assert is_mounted(volume.mountpoint) and env.holder() == pid

    await manager.unmount(volume)
    assert not is_mounted(volume.mountpoint)


_DAEMON = """
import anyio, json, sys
from datetime import UTC, datetime
from adapters.mounting.manager import WorkerMountManager
from domain.volume import BackendSpec, Volume, VolumeSpec
base, cache, remote = sys.argv[1:4]
vol = Volume("vol", base + "/vol", datetime.now(UTC), {"remote": remote},
             VolumeSpec(BackendSpec("local", remote)))
async def main():
    m = WorkerMountManager(base, cache, {}, "INFO", None)
    await m.prepare(vol)
    await m.mount(vol)
    print(m.worker_pid("vol"), flush=True)
    await anyio.sleep(3600)
anyio.run(main)
"""


async def test_worker_outlives_a_daemon_crash_and_is_adopted(env: Env) -> None:
    (env.remote / "a.txt").write_text("still here")
    daemon = subprocess.Popen(
        [sys.executable, "-c", _DAEMON, str(env.base), str(env.cache), str(env.remote)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert daemon.stdout is not None
        pid = int(daemon.stdout.readline())
    finally:
        daemon.kill()
        daemon.wait()
    volume = env.volume()
    assert not _gone(pid)
    assert Path(volume.mountpoint, "a.txt").read_text() == "still here"

    restarted = env.manager()
    assert await restarted.adopt(volume) is True
    assert restarted.worker_pid("vol") == pid
    await restarted.unmount(volume)
    assert not is_mounted(volume.mountpoint)
    await restarted.discard(volume)
    assert holds_within(lambda: _gone(pid))


async def test_killed_worker_leaves_a_stale_mount_that_prepare_clears(
    env: Env, logs: list[str]
) -> None:
    manager, volume = env.manager(), env.volume()
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert holds_within(lambda: is_stale(volume.mountpoint))
    # The supervisor notices, with the exit code.
    assert holds_within(lambda: any("died with exit code -9" in line for line in logs))

    await env.manager().prepare(volume)
    assert not is_stale(volume.mountpoint)
    assert not is_mounted(volume.mountpoint)
    assert os.path.isdir(volume.mountpoint)

    # The volume can be mounted again afterwards.
    await manager.mount(volume)
    assert is_mounted(volume.mountpoint) and manager.worker_pid("vol") != pid
    await manager.unmount(volume)


async def test_adopt_without_a_live_worker_clears_the_stale_mount(env: Env) -> None:
    manager, volume = env.manager(), env.volume()
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert holds_within(lambda: is_stale(volume.mountpoint))

    restarted = env.manager()
    assert await restarted.adopt(volume) is False
    assert not is_mounted(volume.mountpoint) and not is_stale(volume.mountpoint)
    assert restarted.worker_pid("vol") is None


async def test_sigterm_unmounts_and_the_worker_exits(env: Env) -> None:
    manager, volume = env.manager(), env.volume()
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    assert holds_within(lambda: not is_mounted(volume.mountpoint))
    assert holds_within(lambda: _gone(pid))
    assert env.holder() is None


async def test_shutdown_unmounts_every_worker(env: Env) -> None:
    (env.tmp / "remote2").mkdir()
    manager = env.manager()
    volumes = [env.volume("one"), env.volume("two", env.tmp / "remote2")]
    for v in volumes:
        await manager.prepare(v)
        await manager.mount(v)
    pids = [manager.worker_pid(v.name) for v in volumes]
    await manager.shutdown()
    for v, pid in zip(volumes, pids, strict=True):
        assert pid is not None
        assert not is_mounted(v.mountpoint)
        assert holds_within(lambda pid=pid: _gone(pid))  # type: ignore[misc]


def test_worker_reports_a_bad_job_on_its_status_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.mount_worker"],
        input=json.dumps({"name": "x"}).encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout.startswith(b"error mount job: 'mountpoint'")


async def _serving_worker(manager: WorkerMountManager, volume: Volume) -> int:
    """The pid of the worker that now serves `volume`, mounted for the test."""
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid(volume.name)
    assert pid is not None
    return pid


@contextlib.contextmanager
def _hung(pid: int) -> Iterator[None]:
    """The process stopped: alive, holding what it holds, answering nothing."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


async def test_unmount_of_a_hung_worker_still_removes_the_mount(env: Env) -> None:
    manager, volume = env.manager(control_timeout=1.0), env.volume()
    pid = await _serving_worker(manager, volume)
    with _hung(pid):
        with anyio.fail_after(30):
            await manager.unmount(volume)
        assert not is_mounted(volume.mountpoint)
    # The SIGTERM sent while it was stopped is handled once it runs again.
    assert holds_within(lambda: _gone(pid))


# --- the fork server -----------------------------------------------------------


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def test_workers_are_forked_by_the_preloaded_server_in_sessions_of_their_own(
    env: Env,
) -> None:
    (env.tmp / "remote2").mkdir()
    (env.tmp / "remote2" / "b.txt").write_text("two")
    manager = env.manager()
    manager.start()
    server = manager.fork_server_pid()
    assert server is not None and _ppid(server) == os.getpid()
    one, two = env.volume("one"), env.volume("two", env.tmp / "remote2")
    for v in (one, two):
        await manager.prepare(v)
        await manager.mount(v)
    pids = [manager.worker_pid("one"), manager.worker_pid("two")]
    for pid in pids:
        assert pid is not None
        assert _ppid(pid) == server  # forked, not a fresh interpreter
        assert os.getsid(pid) == pid  # its own session: it outlives the daemon
    assert Path(two.mountpoint, "b.txt").read_text() == "two"
    assert env.holder("two") == pids[1]
    # Its output goes to its volume's log, where the daemon reads failures from.
    log = Path(worker_paths(str(env.cache), "two").log).read_text()
    assert f"mount worker pid {pids[1]} starting" in log

    await manager.unmount(one)
    await manager.unmount(two)
    await manager.shutdown()  # retires the workers that wait for another Mount
    for pid in pids:
        assert pid is not None and holds_within(lambda pid=pid: _gone(pid))  # type: ignore[misc]
    assert _gone(server)


async def test_a_killed_fork_server_is_noticed_and_replaced_before_the_next_mount(
    env: Env, logs: list[str]
) -> None:
    manager, volume = env.manager(), env.volume()
    await manager.prepare(volume)
    await manager.mount(volume)
    first = manager.fork_server_pid()
    worker = manager.worker_pid("vol")
    assert first is not None and worker is not None
    os.kill(first, signal.SIGKILL)
    assert holds_within(lambda: any(f"fork server {first} died" in line for line in logs))
    assert holds_within(lambda: manager.fork_server_pid() not in (None, first))
    # The worker it forked serves on.
    assert is_mounted(volume.mountpoint) and not _gone(worker)

    (env.tmp / "remote2").mkdir()
    other = env.volume("other", env.tmp / "remote2")
    await manager.prepare(other)
    await manager.mount(other)
    assert _ppid(manager.worker_pid("other") or 0) == manager.fork_server_pid()
    # A worker whose server died still has its exit noticed (through its pidfd).
    os.kill(worker, signal.SIGKILL)
    assert holds_within(
        lambda: any(f"mount worker {worker} for volume vol died" in line for line in logs)
    )
    await manager.unmount(other)
    await manager.shutdown()


async def test_a_fork_server_dying_at_start_again_is_left_to_the_next_mount(
    env: Env, logs: list[str]
) -> None:
    manager, volume = env.manager(), env.volume()
    manager.start()
    first = manager.fork_server_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)  # soon after its start: restarted once
    assert holds_within(lambda: manager.fork_server_pid() not in (None, first))
    second = manager.fork_server_pid()
    assert second is not None
    os.kill(second, signal.SIGKILL)  # and again: no loop of restarts
    assert holds_within(lambda: any(f"fork server {second} exited" in line for line in logs))
    assert manager.fork_server_pid() == second
    # The next Mount starts one.
    await manager.prepare(volume)
    await manager.mount(volume)
    assert _ppid(manager.worker_pid("vol") or 0) == manager.fork_server_pid() != second
    await manager.unmount(volume)
    await manager.shutdown()


_DAEMON_WITH_FORK_SERVER = """
import anyio, sys
from adapters.mounting.manager import WorkerMountManager
base, cache = sys.argv[1:3]
async def main():
    m = WorkerMountManager(base, cache, {}, "INFO", None)
    m.start()
    print(m.fork_server_pid(), flush=True)
    await anyio.sleep(3600)
anyio.run(main)
"""


def test_the_fork_server_exits_with_its_daemon(env: Env) -> None:
    daemon = subprocess.Popen(
        [sys.executable, "-c", _DAEMON_WITH_FORK_SERVER, str(env.base), str(env.cache)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert daemon.stdout is not None
        server = int(daemon.stdout.readline())
    finally:
        daemon.kill()
        daemon.wait()
    # Not our child: gone means really gone (or a zombie of init's).
    assert holds_within(lambda: _gone(server)), "the fork server outlived its daemon"


async def test_the_worker_answers_unmount_itself(env: Env, logs: list[str]) -> None:
    manager, volume = env.manager(linger=0), env.volume()
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    await manager.unmount(volume)
    assert not is_mounted(volume.mountpoint)
    # No fallback (lazy unmount and SIGTERM from the daemon): the worker replied,
    # and exits on its own, cleanly.
    assert not any("did not unmount" in line for line in logs)
    assert holds_within(
        lambda: any(f"mount worker {pid} for vol exited (0)" in line for line in logs)
    )


def test_the_worker_imports_only_what_its_volume_needs() -> None:
    probe = """
import sys
import entrypoints.mount_worker
entrypoints.mount_worker.load_worker_container()  # what a worker loads before its job
heavy = ["fsspec", "s3fs", "botocore", "aiobotocore", "asyncssh", "fastapi", "hypercorn",
         "starlette", "pydantic", "yaml", "adapters.http", "adapters.mounting.manager",
         "adapters.storage.sftp", "adapters.storage.s3", "adapters.storage.fsspec_storage"]
print(",".join(m for m in heavy if sys.modules.get(m) is not None))
from adapters.storage.factory import DefaultStorageFactory
factory = DefaultStorageFactory()
factory.preload("sftp")
print("asyncssh" in sys.modules, "fsspec" in sys.modules)
print({"local", "sftp", "s3", "memory"} <= set(factory.types))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, cwd=ROOT, timeout=60, check=True
    )
    assert done.stdout.decode().splitlines() == ["", "True False", "True"]


async def test_standby_worker_started_at_create_serves_the_first_mount(env: Env) -> None:
    (env.remote / "f.txt").write_text("ready")
    manager, volume = env.manager(standby=True), env.volume()
    await manager.prepare(volume)  # Create: the worker starts, connected and unmounted
    sock = worker_paths(str(env.cache), "vol").socket
    pid = env.holder()
    assert pid is not None and not is_mounted(volume.mountpoint)
    assert (await call_worker(sock, "status"))["state"] == "standby"

    await manager.mount(volume)
    assert manager.worker_pid("vol") == pid
    assert Path(volume.mountpoint, "f.txt").read_text() == "ready"
    await manager.unmount(volume)
    await manager.shutdown()
    assert pid is not None and holds_within(lambda: _gone(pid))


# --- one deadline for the whole Mount ------------------------------------------


async def test_a_hung_previous_worker_fails_the_mount_within_its_timeout(env: Env) -> None:
    """Each step's own bound (control 1 s, drain 30 s, stop 15 s) sums past the Mount's
    5 s; the Mount still answers by its deadline, with the cause."""
    manager = env.manager(control_timeout=1.0, drain_wait=30.0, stop_wait=15.0, mount_timeout=5)
    volume = env.volume()
    pid = await _serving_worker(manager, volume)
    with _hung(pid):
        await manager.unmount(volume)
        started = time.monotonic()
        with pytest.raises(MountFailed, match=rf"previous mount worker \(pid {pid}\).*hung"):
            await manager.mount(volume)
        assert time.monotonic() - started < 5 + 1.5
    assert holds_within(lambda: _gone(pid))
    await manager.mount(volume)  # its lock released, a new worker serves
    await manager.unmount(volume)
    await manager.shutdown()


async def test_a_hung_fork_server_fails_the_mount_in_time_and_is_replaced(
    env: Env, logs: list[str]
) -> None:
    manager, volume = env.manager(mount_timeout=3), env.volume()
    manager.start()
    server = manager.fork_server_pid()
    assert server is not None
    await manager.prepare(volume)
    with _hung(server):  # it takes the request, and never answers
        started = time.monotonic()
        with pytest.raises(MountFailed, match="fork server did not answer within"):
            await manager.mount(volume)
        assert time.monotonic() - started < 3 + 1.5
    assert holds_within(lambda: _gone(server))  # stopped: what it would answer late is unknown
    await manager.mount(volume)
    assert _ppid(manager.worker_pid("vol") or 0) == manager.fork_server_pid() != server
    await manager.unmount(volume)
    await manager.shutdown()
