"""`MountManager` on worker processes: one mount worker per mounted volume,
forked by the fork server (started with the manager), in its own session so that it outlives the daemon, reached only through
its control socket `<cache-dir>/workers/<volume>.sock`.

This is the orchestration of the daemon's calls; the parts live beside it:
`fork_server`/`fork_client` (the preloaded parent that forks the workers),
`spawning` (starting a worker, its readiness), `control` (the control
socket and the volume's lock), `registry` (the workers known to this daemon),
`mountpoint` (is a mount there alive, clear a dead one) and `volume_cache`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import anyio
from loguru import logger

from adapters.cache import has_dirty_items
from adapters.mounting.control import WorkerControl, time_left
from adapters.mounting.fork_client import ForkedWorker, ForkServer
from adapters.mounting.mountpoint import (
    clear_orphan_mount,
    prepare_mountpoint,
    remove_mountpoint,
)
from adapters.mounting.protocol import ProtocolError, WorkerJob, WorkerStatus
from adapters.mounting.registry import KnownWorker, WorkerRegistry
from adapters.mounting.spawning import launch
from adapters.mounting.system import WorkerUnreachable, is_mounted
from adapters.mounting.volume_cache import remove_volume_cache
from domain.errors import MountFailed
from domain.volume import Volume
from domain.worker_lifecycle import JobMode

# A worker that still holds the volume mounts again in milliseconds (its uploads go
# on under the mount); one that has not managed in this time is left to exit.
_MOUNT_AGAIN_WAIT = 20.0


class WorkerMountManager:
    def __init__(
        self,
        base_dir: str,
        cache_dir: str,
        daemon_defaults: dict[str, str],
        log_level: str,
        log_file: str | None,
        *,
        config_path: str | None = None,
        mount_timeout: float = 100.0,  # under Docker's 2-minute Mount timeout
        control_timeout: float = 10.0,
        drain_wait: float = 30.0,  # for a previous worker's uploads, before stopping it
        stop_wait: float = 15.0,  # for a stopped worker to let go of the volume
        # How long an unmounted worker, its uploads done, stays for the volume's
        # next Mount (which then costs milliseconds); 0: it exits at once.
        linger: float = 30.0,
        # At Create, start the volume's worker unmounted (connected, waiting for
        # the Mount), so the first Mount is as quick as the next ones.
        standby: bool = False,
    ) -> None:
        self.base_dir = base_dir
        self.cache_dir = cache_dir
        self.daemon_defaults = dict(daemon_defaults)
        self.log_level = log_level
        self.log_file = log_file
        self.config_path = config_path
        self.mount_timeout = mount_timeout
        self.linger = linger
        self.standby = standby and linger > 0
        self._control = WorkerControl(
            cache_dir, control_timeout=control_timeout, drain_wait=drain_wait, stop_wait=stop_wait
        )
        self._registry = WorkerRegistry(self._control.holder)
        self._forks = ForkServer(log_level, log_file)
        self._locks: dict[str, anyio.Lock] = {}

    # --- MountManager ----------------------------------------------------------

    async def prepare(self, volume: Volume) -> None:
        if not await prepare_mountpoint(volume.mountpoint):
            return
        if self.standby:
            # Create answers once the worker is connected: Docker's Mount follows
            # at once with `docker run -v new:/data`, and would only wait for it.
            await self._start_standby(volume)

    async def _start_standby(self, volume: Volume) -> None:
        async with self._lock(volume.name):
            if self._control.holder(volume.name) is not None:
                return  # a worker already serves it
            try:
                await self._spawn(volume, JobMode.STANDBY)
            except Exception as e:
                logger.warning("no worker started ahead for volume {}: {}", volume.name, e)

    async def discard(self, volume: Volume) -> None:
        await self._retire(volume.name, volume_removed=True)
        if not await remove_mountpoint(volume.mountpoint):
            return
        # A worker still draining keeps the cache (and removes it itself when done).
        if self._control.holder(volume.name) is None:
            await remove_volume_cache(self.cache_dir, volume.name)

    async def mount(self, volume: Volume) -> None:
        # One deadline for every step (waiting for the volume's lock, for a previous
        # worker, asking a lingering one, starting a new one): their sum must stay
        # under Docker's timeout, or Docker gives up without our error message.
        deadline = anyio.current_time() + self.mount_timeout
        async with self._lock_by(volume.name, deadline):
            self._registry.reap()
            known = self._registry.serving(volume.name)
            if known is not None and is_mounted(volume.mountpoint):
                logger.info("volume {} is already mounted by worker {}", volume.name, known.pid)
                return
            status = await self._control.probe(volume.name)
            if status is not None and status.state == "mounted":
                if self._adopt_if_live(volume, status):
                    logger.info("volume {} is already served by worker {}", volume.name, status.pid)
                    return
                await self._stop(volume, status.pid, retire=True)
            elif status is not None and await self._mount_again(volume, status, deadline):
                return
            await self._spawn(volume, deadline=deadline)

    async def unmount(self, volume: Volume) -> None:
        async with self._lock(volume.name):
            self._registry.reap()
            worker = self._registry.unmounted(volume.name)
            await self._stop(volume, worker.pid if worker is not None else None)

    async def _mount_again(self, volume: Volume, status: WorkerStatus, deadline: float) -> bool:
        """Have the volume's unmounted worker (still uploading, lingering, or on
        standby) serve the mount again. False when it refuses (it runs another
        job, or is exiting) or does not manage it in time: a new worker then takes
        over, with the rest of the Mount's time."""
        within = min(_MOUNT_AGAIN_WAIT, time_left(deadline))
        try:
            job = json.loads(self._job(volume).to_json())
            await self._control.ask(volume.name, "mount", within, job=job)
        except (WorkerUnreachable, ProtocolError) as e:
            logger.info("worker {} of volume {} will not mount it: {}", status.pid, volume.name, e)
            await self._retire(volume.name)  # so it does not linger in the new one's way
            return False
        if not is_mounted(volume.mountpoint):
            logger.warning("worker {} said mounted, but {} is not", status.pid, volume.mountpoint)
            return False
        worker = self._registry.take_lingering(volume.name)
        if worker is None or worker.pid != status.pid:
            worker = self._known(volume, status.pid)
        worker.serving, worker.expected_exit = True, False
        self._registry.add(worker)
        logger.info("worker {} serves volume {} again", status.pid, volume.name)
        return True

    async def adopt(self, volume: Volume) -> bool:
        async with self._lock(volume.name):
            status = await self._control.probe(volume.name)
            if status is not None and status.state == "mounted":
                if self._adopt_if_live(volume, status):
                    logger.info("adopted mount worker {} for volume {}", status.pid, volume.name)
                    return True
                logger.warning(
                    "worker {} for volume {} has no live mount at {}; stopping it",
                    status.pid,
                    volume.name,
                    volume.mountpoint,
                )
                await self._stop(volume, status.pid, retire=True)
                return False
            if status is None:
                await clear_orphan_mount(volume.mountpoint, self._control.paths(volume.name).lock)
            return False

    async def recover(self, volume: Volume) -> bool:
        """At daemon start, for a volume nobody mounts: when its cache holds files
        a killed worker did not upload, start a drain worker for them. Returns
        whether one was started."""
        async with self._lock(volume.name):
            if self._control.holder(volume.name) is not None:
                return False  # a worker serves it, and uploads what is pending
            if not await anyio.to_thread.run_sync(has_dirty_items, self.cache_dir, volume.name):
                return False
            logger.info("volume {} has files not uploaded yet: starting a worker", volume.name)
            await self._spawn(volume, JobMode.DRAIN)
            return True

    async def shutdown(self) -> None:
        self._registry.reap()
        async with anyio.create_task_group() as tg:
            for worker in self._registry.workers(serving=True):
                tg.start_soon(self._unmount_quietly, worker.name, worker.mountpoint)
            for worker in self._registry.workers(serving=False):
                tg.start_soon(self._retire, worker.name)
        await anyio.to_thread.run_sync(self._forks.close)

    # --- extras for the daemon ---------------------------------------------------

    async def forget_all(self) -> None:
        """Forward the daemon's SIGHUP: every worker forgets its directory cache
        (those waiting for the next Mount too)."""
        for name in self._registry.names():
            try:
                await self._control.ask(name, "forget")
            except (WorkerUnreachable, ProtocolError) as e:
                logger.warning("could not tell the worker for {} to forget: {}", name, e)

    def worker_pid(self, name: str) -> int | None:
        """The pid of the worker this manager runs or adopted for `name`."""
        self._registry.reap()
        worker = self._registry.serving(name)
        return worker.pid if worker is not None else None

    def start(self) -> None:
        """Start the fork server now, so that its imports are done by the first
        Mount (else the first worker started starts it)."""
        self._forks.start()

    def fork_server_pid(self) -> int | None:
        return self._forks.pid

    def close(self) -> None:
        """Stop the fork server; workers go on (`shutdown` stops them first)."""
        self._forks.close()

    # --- the steps ----------------------------------------------------------------

    async def _spawn(
        self, volume: Volume, mode: JobMode = JobMode.MOUNT, *, deadline: float | None = None
    ) -> None:
        name = volume.name
        if deadline is None:
            deadline = anyio.current_time() + self.mount_timeout
        if mode is JobMode.MOUNT:
            await self._control.wait_for_previous_worker(name, deadline)
            await clear_orphan_mount(volume.mountpoint, self._control.paths(name).lock)
            await prepare_mountpoint(volume.mountpoint)
        log = self._control.paths(name).log
        proc = await launch(
            self._job(volume, mode),
            log,
            self._forks,
            (volume.spec.backend.type,),
            deadline,
            self.mount_timeout,
        )
        worker = self._known(volume, proc.pid, proc, serving=mode is JobMode.MOUNT)
        # A standby worker exits unless mounted within `linger`, a drain worker once
        # its uploads are done; only a mount job's worker is tracked as serving.
        worker.expected_exit = mode is not JobMode.MOUNT
        if mode is not JobMode.DRAIN:
            self._registry.add(worker)
        self._registry.watch(worker)

    def _job(self, volume: Volume, mode: JobMode = JobMode.MOUNT) -> WorkerJob:
        return WorkerJob(
            name=volume.name,
            mountpoint=volume.mountpoint,
            options=dict(volume.options),
            defaults=self.daemon_defaults,
            cache_dir=self.cache_dir,
            control_socket=self._control.paths(volume.name).socket,
            log_level=self.log_level,
            log_file=self.log_file,
            config_path=self.config_path,
            mode=mode,
            linger=0.0 if mode is JobMode.DRAIN else self.linger,
        )

    async def _stop(self, volume: Volume, pid: int | None, *, retire: bool = False) -> None:
        known = self._registry.serving(volume.name)
        await self._control.stop(
            volume.name,
            volume.mountpoint,
            pid,
            retire=retire,
            pid_is_our_child=known is not None and known.child_alive(),
        )

    async def _unmount_quietly(self, name: str, mp: str) -> None:
        async with self._lock(name):
            worker = self._registry.take_serving(name)
            pid = worker.pid if worker is not None else None
            try:
                await self._control.stop(name, mp, pid, retire=True, pid_is_our_child=False)
            except Exception as e:
                logger.error("unmounting {} at shutdown failed: {}", name, e)

    async def _retire(self, name: str, *, volume_removed: bool = False) -> None:
        """Have the volume's unmounted worker, if one is still there, exit once its
        uploads are done (see `WorkerControl.retire`)."""
        known = self._registry.take_lingering(name)
        if known is None and self._control.holder(name) is None:
            return
        await self._control.retire(name, volume_removed=volume_removed)

    def _adopt_if_live(self, volume: Volume, status: WorkerStatus) -> bool:
        """Track a worker that says it is mounted, if its mount is the volume's and live."""
        if status.mountpoint != volume.mountpoint or not is_mounted(volume.mountpoint):
            return False
        self._registry.add(self._known(volume, status.pid))
        return True

    def _known(
        self,
        volume: Volume,
        pid: int,
        process: ForkedWorker | None = None,
        *,
        serving: bool = True,
    ) -> KnownWorker:
        log = self._control.paths(volume.name).log
        return KnownWorker(volume.name, volume.mountpoint, pid, process, log, serving)

    def _lock(self, name: str) -> anyio.Lock:
        # Per volume: a slow mount of one volume never blocks another.
        return self._locks.setdefault(name, anyio.Lock())

    @contextlib.asynccontextmanager
    async def _lock_by(self, name: str, deadline: float) -> AsyncIterator[None]:
        """The volume's lock, if it comes by `deadline`; else MountFailed."""
        lock = self._lock(name)
        try:
            with anyio.fail_after(time_left(deadline)):
                await lock.acquire()
        except TimeoutError:
            raise MountFailed(
                f"another operation on volume {name} (a mount, an unmount, or uploads "
                "being resumed) is still running; try again later"
            ) from None
        try:
            yield
        finally:
            lock.release()
