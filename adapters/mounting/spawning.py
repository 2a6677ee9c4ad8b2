"""Starting worker processes: spares started ahead of their job, handing a job to
one, waiting for its readiness report, and saying why a worker went away.

Starting Python and importing the FUSE and storage stacks is most of what a Mount
costs, so the daemon keeps spares: workers blocked reading their job, that the
next Mount hands its job to. A spare is spawned exactly as a worker is (its own
session, a child of the daemon), so a worker taken from it is no different from
one started on demand; it preloads the storage backends this daemon has mounted,
and exits when its stdin closes (daemon shutdown or crash)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from loguru import logger

from adapters.mounting.protocol import (
    SPARE_IDLE,
    Readiness,
    WorkerJob,
    decode_readiness,
    log_tail,
)
from adapters.mounting.system import is_mounted, lazy_unmount
from domain.errors import MountFailed
from domain.worker_lifecycle import JobMode

# The directory holding domain/, application/, adapters/ and entrypoints/: the
# worker imports them from there whatever the daemon's working directory is.
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
_WORKER_MODULE = "entrypoints.mount_worker"
_TAIL_BYTES = 16 * 1024
_SPARE_WARM_WAIT = 20.0  # for a spare worker still starting; then a fresh one


@dataclass
class _Spare:
    process: subprocess.Popen[bytes]
    read_fd: int  # its readiness pipe
    taken: bool = False  # handed a job: a worker now, no longer the spare
    finalizer: weakref.finalize[..., SparePool] | None = None  # stops it with its pool


class SparePool:
    """Up to `size` spare workers, oldest (the warmest) first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.preload: set[str] = set()  # backend types mounted so far
        self._spares: list[_Spare] = []

    def fill(self) -> None:
        while len(self._spares) < self.size:
            try:
                proc, read_fd = start_worker(None, preload=sorted(self.preload))
            except OSError as e:
                logger.warning("could not start a spare mount worker: {}", e)
                return
            spare = _Spare(proc, read_fd)
            # Whoever drops the pool without close() leaves no spare behind.
            spare.finalizer = weakref.finalize(self, _stop_spare, spare)
            self._spares.append(spare)
            logger.debug("started spare mount worker {}", proc.pid)

    async def take(self, deadline: float) -> tuple[subprocess.Popen[bytes], int] | None:
        """The next spare (its process and readiness fd) once it says it is idle
        (warmed up, waiting for its job); None if there is none ready: then a
        fresh worker is started, whose errors go to the volume's log (a spare's go
        nowhere until it has a job). A spare that died or hangs before it is idle
        is stopped."""
        while self._spares:
            spare = self._spares.pop(0)
            spare.taken = True
            if spare.finalizer is not None:
                spare.finalizer.detach()
            within = min(max(deadline - anyio.current_time(), 0), _SPARE_WARM_WAIT)
            idle = False
            try:
                idle = await _await_idle(spare.read_fd, within)
            finally:
                if not idle:
                    with contextlib.suppress(ProcessLookupError):
                        spare.process.kill()
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(_discard_spare, spare)
            if idle:
                return spare.process, spare.read_fd
            logger.warning(
                "the spare mount worker {} did not get ready (exit status {})",
                spare.process.pid,
                spare.process.returncode,
            )
        return None

    def close(self) -> None:
        """Stop the spare workers: they hold no volume, and exit at once."""
        spares, self._spares = self._spares, []
        for spare in spares:
            _stop_spare(spare)

    def pids(self) -> list[int]:
        return [spare.process.pid for spare in self._spares]


async def launch(
    job: WorkerJob, log: str, spares: SparePool, deadline: float, allowed: float
) -> subprocess.Popen[bytes]:
    """Hand `job` to a spare (or to a worker started now) and wait until it says
    ready by `deadline` (`allowed` seconds after the Mount began); a mount job's
    mount is verified too. On failure the worker is killed (its mount taken
    away) and MountFailed says why."""
    name, mp, mounts = job.name, job.mountpoint, job.mode is JobMode.MOUNT
    log_start = _file_size(log)  # report only this run's log lines
    taken = await spares.take(deadline)
    if taken is not None:
        proc, read_fd = taken
        logger.info("mount worker {} (started ahead) serves volume {}", proc.pid, name)
    else:
        proc, read_fd = start_worker(log)
        logger.info("started mount worker {} for volume {}", proc.pid, name)
    try:
        await anyio.to_thread.run_sync(_send_job, proc, job.to_json().encode())
        report = await _await_readiness(read_fd, deadline)
        if report is None:
            raise MountFailed(
                f"mount worker for {name} did not report ready within "
                f"{allowed:g} s and was killed" + with_tail(read_tail(log, log_start))
            )
        if not report.ready:
            raise MountFailed(report.error or await _describe_exit(proc, log, log_start))
        if mounts:
            await _verify_mounted(mp, proc)
    except BaseException as e:
        await _kill(proc, mp, unmount=mounts)
        if isinstance(e, MountFailed) or not isinstance(e, Exception):
            raise
        raise MountFailed(f"mount worker for {name} failed: {e}") from e
    finally:
        os.close(read_fd)
    return proc


def start_worker(
    log_path: str | None, preload: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a worker; returns it and the read end of its readiness pipe. Without
    `log_path`, a spare: its output goes to its volume's log once it has a job."""
    argv = [sys.executable, "-m", _WORKER_MODULE]
    if log_path is None:
        argv.append("--spare")
        for type_name in preload:
            argv += ["--preload", type_name]
    else:
        os.makedirs(os.path.dirname(log_path), mode=0o700, exist_ok=True)
    read_fd, write_fd = os.pipe()
    try:
        with open(log_path or os.devnull, "ab") as log:
            proc = subprocess.Popen(
                [*argv, "--status-fd", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                pass_fds=(write_fd,),
                start_new_session=True,  # survive a daemon crash and its signals
                cwd="/",
                env=_worker_env(),
            )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return proc, read_fd


async def _await_readiness(fd: int, deadline: float) -> Readiness | None:
    """The worker's report; `Readiness(False, "")` if it closed the pipe without
    one, None at the deadline."""
    os.set_blocking(fd, False)
    data = b""
    with anyio.move_on_after(max(deadline - anyio.current_time(), 0)):
        while True:
            await anyio.wait_readable(fd)
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                return decode_readiness(data + b"\n") if data else Readiness(False)
            data += chunk
            report = decode_readiness(data)
            if report is not None:
                return report
    return None


async def _await_idle(fd: int, within: float) -> bool:
    """Whether a spare worker said it is idle on its readiness pipe in time."""
    os.set_blocking(fd, False)
    data = b""
    with anyio.move_on_after(within):
        while len(data) < len(SPARE_IDLE):
            await anyio.wait_readable(fd)
            try:
                chunk = os.read(fd, len(SPARE_IDLE) - len(data))
            except BlockingIOError:
                continue
            if not chunk:
                return False
            data += chunk
        return data == SPARE_IDLE
    return False


async def _verify_mounted(mp: str, proc: subprocess.Popen[bytes]) -> None:
    # The worker says ready only after the kernel mount; allow a moment for
    # /proc/self/mountinfo anyway rather than trusting the word alone.
    with anyio.move_on_after(5):
        while not is_mounted(mp):
            if proc.poll() is not None:
                break
            await anyio.sleep(0.01)
    if not is_mounted(mp):
        raise MountFailed(f"mount worker reported ready but {mp} is not mounted")


async def _kill(proc: subprocess.Popen[bytes], mp: str, *, unmount: bool) -> None:
    if proc.poll() is None:
        proc.kill()
    await anyio.to_thread.run_sync(proc.wait)
    if unmount and is_mounted(mp):
        with contextlib.suppress(OSError):
            await lazy_unmount(mp)


async def _describe_exit(proc: subprocess.Popen[bytes], log: str, log_start: int) -> str:
    """Why a worker went away without a report: its exit status and its own words."""
    with anyio.move_on_after(5):
        while proc.poll() is None:  # noqa: ASYNC110 (the watcher thread owns wait())
            await anyio.sleep(0.05)
    code = proc.poll()
    status = "is still running" if code is None else f"exited with status {code}"
    return f"mount worker {status} without reporting ready" + with_tail(read_tail(log, log_start))


def _stop_spare(spare: _Spare) -> None:
    if not spare.taken:
        spare.taken = True
        if spare.finalizer is not None:
            spare.finalizer.detach()
        with contextlib.suppress(ProcessLookupError):
            spare.process.kill()
        _discard_spare(spare)


def _discard_spare(spare: _Spare) -> None:
    """Close its stdin (a spare still waiting exits on it) and reap it."""
    os.close(spare.read_fd)
    if spare.process.stdin is not None:
        with contextlib.suppress(OSError):
            spare.process.stdin.close()
    spare.process.wait()


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PROJECT_ROOT + (os.pathsep + path if path else "")
    return env


def _send_job(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the worker died at once; its exit status and log tell why


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read_tail(path: str, start: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(start, size - _TAIL_BYTES))
            return log_tail(f.read().decode(errors="replace"))
    except OSError:
        return ""


def with_tail(tail: str) -> str:
    return f"; last lines of its log:\n{tail}" if tail.strip() else ""
