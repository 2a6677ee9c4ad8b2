"""The daemon's side of a volume's worker: its control socket and its lock file.
Asks the worker what it is doing, tells it to unmount or retire, and when it
does not answer, makes it let go (unmount here, SIGTERM the lock's holder)."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

import anyio
from loguru import logger

from adapters.mounting.live_workers import volumes_with_live_workers
from adapters.mounting.mountpoint import unmount_or_fail
from adapters.mounting.protocol import (
    ProtocolError,
    WorkerPaths,
    WorkerStatus,
    parse_status,
    worker_paths,
)
from adapters.mounting.system import WorkerUnreachable, call_worker, is_mounted, lock_holder
from application.operations import WorkerRequestFailed
from domain.errors import MountFailed

_RETIRE_WAIT = 2.0  # for a retired worker with nothing to upload to let go


def time_left(deadline: float) -> float:
    """Seconds from now to `deadline` (in anyio's clock), never negative."""
    return max(deadline - anyio.current_time(), 0.0)


class WorkerControl:
    def __init__(
        self, cache_dir: str, *, control_timeout: float, drain_wait: float, stop_wait: float
    ) -> None:
        self.cache_dir = cache_dir
        self.control_timeout = control_timeout
        self.drain_wait = drain_wait  # for a previous worker's uploads, before stopping it
        self.stop_wait = stop_wait  # for a stopped worker to let go of the volume

    def paths(self, name: str) -> WorkerPaths:
        return worker_paths(self.cache_dir, name)

    def holder(self, name: str) -> int | None:
        """The pid of the live worker holding the volume's lock (0 while it is
        writing its pid), or None."""
        return lock_holder(self.paths(name).lock)

    async def ask(
        self, name: str, op: str, within: float | None = None, **fields: Any
    ) -> WorkerStatus:
        """Raises WorkerUnreachable, or ProtocolError when the worker refuses."""
        reply = await call_worker(
            self.paths(name).socket, op, within or self.control_timeout, **fields
        )
        return parse_status(reply)

    async def probe(self, name: str) -> WorkerStatus | None:
        try:
            return await self.ask(name, "status")
        except (WorkerUnreachable, ProtocolError) as e:
            logger.debug("no live worker for {}: {}", name, e)
            return None

    async def retire(self, name: str, *, volume_removed: bool = False) -> None:
        """Tell the volume's unmounted worker not to wait for another Mount: it
        exits once its uploads are done (at once when there are none, releasing
        the volume's lock within milliseconds). A removed volume's worker also
        removes the cache once it has uploaded everything."""
        try:
            await self.ask(name, "retire", volume_removed=volume_removed)
        except (WorkerUnreachable, ProtocolError) as e:
            logger.debug("no worker to retire for {}: {}", name, e)
            return
        await self.lock_released(name, _RETIRE_WAIT)

    async def stop(
        self, name: str, mp: str, pid: int | None, *, retire: bool, pid_is_our_child: bool
    ) -> None:
        """Ask the worker to unmount (`retire`: and not to wait for another Mount);
        if it does not answer, unmount here and SIGTERM it. Returns once the mount
        is gone, without waiting for the worker to exit. `pid_is_our_child`: `pid`
        is a live child of this daemon, so safe to signal even without the lock."""
        try:
            status = await self.ask(name, "retire" if retire else "unmount")
            logger.info("worker {} unmounted {} ({})", status.pid, mp, status.state)
        except (WorkerUnreachable, ProtocolError) as e:
            if pid is not None or self.holder(name) or is_mounted(mp):
                logger.warning("worker for {} did not unmount ({}); doing it here", name, e)
            if is_mounted(mp):
                await unmount_or_fail(mp)
            self._terminate(name, pid if pid_is_our_child else None)
        if is_mounted(mp):
            await unmount_or_fail(mp)

    def _terminate(self, name: str, child_pid: int | None) -> None:
        # Signal only a pid proven to be this volume's worker (it holds the lock,
        # or is our own live child), never one that may have been reused.
        target = self.holder(name) or child_pid
        if target:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGTERM)
                logger.info("sent SIGTERM to mount worker {} of {}", target, name)

    async def wait_for_previous_worker(self, name: str, deadline: float) -> None:
        """A worker still draining (uploading after an unmount, or a drain job)
        holds the volume's lock, and two workers must never share one cache.
        Wait `drain_wait` seconds for it; then stop it (SIGTERM: its uploads stay
        recorded on disk and the new worker resumes them at once) and wait for
        its lock, so the Mount still answers within Docker's timeout: neither wait
        goes past the Mount's `deadline`, and the stop keeps `stop_wait` of it."""
        pid = self.holder(name)
        if pid is None:
            return
        status = await self.probe(name)
        drain_wait = max(min(self.drain_wait, time_left(deadline) - self.stop_wait), 0.0)
        pending = status.extra.get("pending_uploads") if status is not None else None
        logger.info(
            "waiting up to {:g} s for the previous worker {} of volume {} to finish{}",
            self.drain_wait,
            pid,
            name,
            f" ({pending} upload(s) pending)" if pending else "",
        )
        if await self.lock_released(name, drain_wait):
            return
        holder = self.holder(name)
        if holder:
            logger.warning(
                "previous worker {} of volume {} is still uploading after {:g} s: stopping "
                "it; the new worker resumes its uploads",
                holder,
                name,
                drain_wait,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(holder, signal.SIGTERM)
        if await self.lock_released(name, min(self.stop_wait, time_left(deadline))):
            return
        raise MountFailed(
            f"the previous mount worker (pid {pid}) of volume {name} is still running "
            "and does not stop (hung?); try again later"
        )

    async def lock_released(self, name: str, within: float) -> bool:
        lock = self.paths(name).lock
        with anyio.move_on_after(within):
            delay = 0.005  # a worker that just unmounted lets go within milliseconds
            while lock_holder(lock) is not None:  # another process: polled
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.1)
            return True
        return False


class WorkerAdminClient:
    """`application.operations.WorkerAdmin` over the workers' control sockets under
    `<cache-dir>/workers`: the daemon's volumes and any `cloudvol mount` started
    with the same cache directory."""

    def __init__(self, cache_dir: str, *, within: float = 5.0) -> None:
        self.cache_dir = cache_dir
        self.within = within

    def live_workers(self) -> list[str]:
        return volumes_with_live_workers(self.cache_dir)

    async def request(self, name: str, op: str, **fields: Any) -> dict[str, Any]:
        """The reply's fields (`ok` left out); raises WorkerRequestFailed."""
        try:
            reply = await call_worker(
                worker_paths(self.cache_dir, name).socket, op, self.within, **fields
            )
        except (WorkerUnreachable, ProtocolError) as e:
            raise WorkerRequestFailed(f"no mount worker answered: {e}") from None
        if reply.get("ok") is not True:
            raise WorkerRequestFailed(str(reply.get("error") or "the worker refused"))
        return {k: v for k, v in reply.items() if k != "ok"}
