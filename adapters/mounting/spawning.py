"""Starting a worker: the fork server forks it (see `fork_client`), the job goes
with the request, and the worker reports on its status pipe; this waits for that
report, verifies the mount, and says why a worker went away.

A fork of the preloaded server costs milliseconds, so no worker is started ahead
of its job (as spares were, when each worker was a fresh interpreter)."""

from __future__ import annotations

import contextlib
import os

import anyio
from loguru import logger

from adapters.mounting.control import time_left
from adapters.mounting.fork_client import ForkedWorker, ForkServer
from adapters.mounting.protocol import (
    Readiness,
    WorkerJob,
    decode_readiness,
    log_tail,
)
from adapters.mounting.system import is_mounted, lazy_unmount
from domain.errors import MountFailed
from domain.worker_lifecycle import JobMode

_TAIL_BYTES = 16 * 1024
_FORK_ANSWER_FLOOR = 2.0


async def launch(
    job: WorkerJob,
    log: str,
    forks: ForkServer,
    preload: tuple[str, ...],
    deadline: float,
    allowed: float,
) -> ForkedWorker:
    """Have the fork server start a worker for `job` (importing the `preload`
    backends in itself first) and wait until it says ready by `deadline`
    (`allowed` seconds after the Mount began); a mount job's mount is verified
    too. On failure the worker is killed (its mount taken away) and MountFailed
    says why."""
    name, mp, mounts = job.name, job.mountpoint, job.mode is JobMode.MOUNT
    log_start = _file_size(log)  # report only this run's log lines
    read_fd, write_fd = os.pipe()
    try:
        proc = await anyio.to_thread.run_sync(
            forks.spawn,
            job.to_json().encode(),
            preload,
            write_fd,
            # A fork takes milliseconds: the floor spares a Mount whose time is
            # nearly gone a failure that would not say what was slow.
            max(time_left(deadline), _FORK_ANSWER_FLOOR),
        )
    except OSError as e:
        os.close(read_fd)
        raise MountFailed(f"could not start a mount worker for {name}: {e}") from e
    finally:
        os.close(write_fd)  # the worker has its own: EOF here when it exits
    logger.info("started mount worker {} for volume {}", proc.pid, name)
    try:
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


async def _await_readiness(fd: int, deadline: float) -> Readiness | None:
    """The worker's report; `Readiness(False, "")` if it closed the pipe without
    one, None at the deadline."""
    os.set_blocking(fd, False)
    data = b""
    with anyio.move_on_after(time_left(deadline)):
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


async def _verify_mounted(mp: str, proc: ForkedWorker) -> None:
    # The worker says ready only after the kernel mount; allow a moment for
    # /proc/self/mountinfo anyway rather than trusting the word alone.
    with anyio.move_on_after(5):
        while not is_mounted(mp):
            if proc.poll() is not None:
                break
            await anyio.sleep(0.01)
    if not is_mounted(mp):
        raise MountFailed(f"mount worker reported ready but {mp} is not mounted")


async def _kill(proc: ForkedWorker, mp: str, *, unmount: bool) -> None:
    if proc.poll() is None:
        proc.kill()
    await anyio.to_thread.run_sync(proc.wait)
    if unmount and is_mounted(mp):
        with contextlib.suppress(OSError):
            await lazy_unmount(mp)


async def _describe_exit(proc: ForkedWorker, log: str, log_start: int) -> str:
    """Why a worker went away without a report: its exit status and its own words."""
    with anyio.move_on_after(5):
        while proc.poll() is None:  # noqa: ASYNC110 (the watcher thread owns wait())
            await anyio.sleep(0.05)
    code = proc.poll()
    status = "is still running" if code is None else f"exited with status {code}"
    return f"mount worker {status} without reporting ready" + with_tail(read_tail(log, log_start))


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
