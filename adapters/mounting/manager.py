"""`MountManager` on worker processes: one `entrypoints.mount_worker` per mounted
volume, in its own session so that it outlives the daemon, reached only through
its control socket `<cache-dir>/workers/<volume>.sock`.

Starting Python and importing the FUSE and storage stacks is most of what a Mount
costs, so after each spawn the manager starts the next worker ahead of time: a
spare, blocked reading its job, that the next Mount hands its job to. It is
spawned exactly as a worker is (its own session, a child of the daemon), so a
worker taken from it is no different from one started on demand; it preloads
the storage backends this daemon has mounted, and exits when its stdin closes
(daemon shutdown or crash)."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from loguru import logger

from adapters.cache import cache_root, has_dirty_items
from adapters.mounting.protocol import (
    SPARE_IDLE,
    ProtocolError,
    Readiness,
    WorkerJob,
    WorkerPaths,
    WorkerStatus,
    decode_readiness,
    log_tail,
    parse_status,
    worker_paths,
)
from adapters.mounting.system import (
    WorkerUnreachable,
    call_worker,
    is_mounted,
    lazy_unmount,
    lock_holder,
    mount_at,
    probe_stale,
)
from domain.errors import MountFailed
from domain.volume import Volume
from domain.worker_lifecycle import JobMode

# The directory holding domain/, application/, adapters/ and entrypoints/: the
# worker imports them from there whatever the daemon's working directory is.
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
_WORKER_MODULE = "entrypoints.mount_worker"
_TAIL_BYTES = 16 * 1024
_RETIRE_WAIT = 2.0  # for a retired worker with nothing to upload to let go
_SPARE_WARM_WAIT = 20.0  # for a spare worker still starting; then a fresh one


@dataclass
class _Spare:
    process: subprocess.Popen[bytes]
    read_fd: int  # its readiness pipe
    taken: bool = False  # handed a job: a worker now, no longer the spare
    finalizer: weakref.finalize[..., WorkerMountManager] | None = None  # stops it with its manager


@dataclass
class _Worker:
    name: str
    mountpoint: str
    pid: int
    process: subprocess.Popen[bytes] | None  # None for a worker adopted after a restart
    log: str
    expected_exit: bool = False


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
        # Workers kept started ahead of their Mount: Docker mounts a volume twice
        # per `docker run` (once to create the container, once to start it), in
        # quick succession, so two; 0 starts every worker on demand.
        spare_workers: int = 2,
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
        self.control_timeout = control_timeout
        self.drain_wait = drain_wait
        self.stop_wait = stop_wait
        self.spare_workers = spare_workers
        self.linger = linger
        self.standby = standby and linger > 0
        self._workers: dict[str, _Worker] = {}  # serving a mount
        self._lingering: dict[str, _Worker] = {}  # unmounted, still there for the next Mount
        self._locks: dict[str, anyio.Lock] = {}
        self._spares: list[_Spare] = []  # oldest (the warmest) first
        self._preload: set[str] = set()  # backend types mounted so far

    # --- MountManager ----------------------------------------------------------

    async def prepare(self, volume: Volume) -> None:
        # A volume being created is about to be mounted: have its worker ready.
        self._preload.add(volume.spec.backend.type)
        self._start_spares()
        if not await self._prepare_mountpoint(volume):
            return
        if self.standby:
            # Create answers once the worker is connected: Docker's Mount follows
            # at once with `docker run -v new:/data`, and would only wait for it.
            await self._start_standby(volume)

    async def _prepare_mountpoint(self, volume: Volume) -> bool:
        """Make the mountpoint; False when a live mount is there already (the
        directory then exists, and must stay untouched)."""
        if await self._mounted_and_live(volume.mountpoint):
            return False
        _make_mountpoint(volume.mountpoint)
        return True

    async def _start_standby(self, volume: Volume) -> None:
        async with self._lock(volume.name):
            if lock_holder(self._paths(volume.name).lock) is not None:
                return  # a worker already serves it
            try:
                await self._spawn(volume, JobMode.STANDBY)
            except Exception as e:
                logger.warning("no worker started ahead for volume {}: {}", volume.name, e)

    async def discard(self, volume: Volume) -> None:
        await self._retire(volume.name, volume_removed=True)
        mp = volume.mountpoint
        if await self._mounted_and_live(mp):
            logger.warning("not removing {}: something is still mounted there", mp)
            return
        try:
            os.rmdir(mp)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                raise
            logger.warning("not removing {}: the directory is not empty", mp)
        await self._discard_cache(volume.name)

    async def _discard_cache(self, name: str) -> None:
        """The removed volume's file cache goes too, unless it still holds files to
        upload (a worker still draining keeps it, and so does data nobody uploaded)."""
        root = cache_root(self.cache_dir, name)
        if lock_holder(self._paths(name).lock) is not None:
            return
        if await anyio.to_thread.run_sync(has_dirty_items, self.cache_dir, name):
            logger.warning(
                "keeping the cache of removed volume {}: it holds files not uploaded", name
            )
            return
        await anyio.to_thread.run_sync(functools.partial(shutil.rmtree, root, ignore_errors=True))

    async def mount(self, volume: Volume) -> None:
        async with self._lock(volume.name):
            self._reap()
            known = self._workers.get(volume.name)
            if known is not None and is_mounted(volume.mountpoint):
                logger.info("volume {} is already mounted by worker {}", volume.name, known.pid)
                return
            status = await self._probe(volume.name)
            if status is not None and status.state == "mounted":
                if self._is_live_mount(status, volume):
                    self._adopt(volume, status)
                    logger.info("volume {} is already served by worker {}", volume.name, status.pid)
                    return
                await self._stop(volume.name, volume.mountpoint, status.pid, retire=True)
            elif status is not None and await self._mount_again(volume, status):
                return
            await self._spawn(volume)

    async def unmount(self, volume: Volume) -> None:
        async with self._lock(volume.name):
            self._reap()
            worker = self._workers.pop(volume.name, None)
            pid = None
            if worker is not None:
                worker.expected_exit = True  # it exits by itself once it stops lingering
                pid = worker.pid
                self._lingering[volume.name] = worker
            await self._stop(volume.name, volume.mountpoint, pid)

    async def _mount_again(self, volume: Volume, status: WorkerStatus) -> bool:
        """Have the volume's unmounted worker (still uploading, or lingering) serve
        the mount again. False when it refuses (it runs another job, or is
        exiting): a new worker then takes over."""
        try:
            reply = await call_worker(
                self._paths(volume.name).socket,
                "mount",
                self.mount_timeout,
                job=json.loads(self._job(volume).to_json()),
            )
            parse_status(reply)
        except (WorkerUnreachable, ProtocolError) as e:
            logger.info("worker {} of volume {} will not mount it: {}", status.pid, volume.name, e)
            await self._retire(volume.name)  # so it does not linger in the new one's way
            return False
        if not is_mounted(volume.mountpoint):
            logger.warning("worker {} said mounted, but {} is not", status.pid, volume.mountpoint)
            return False
        worker = self._lingering.pop(volume.name, None)
        if worker is None or worker.pid != status.pid:
            worker = _Worker(
                volume.name, volume.mountpoint, status.pid, None, self._paths(volume.name).log
            )
        worker.expected_exit = False
        self._workers[volume.name] = worker
        logger.info("worker {} serves volume {} again", status.pid, volume.name)
        return True

    async def adopt(self, volume: Volume) -> bool:
        async with self._lock(volume.name):
            status = await self._probe(volume.name)
            if status is not None and status.state == "mounted":
                if self._is_live_mount(status, volume):
                    self._adopt(volume, status)
                    logger.info("adopted mount worker {} for volume {}", status.pid, volume.name)
                    return True
                logger.warning(
                    "worker {} for volume {} has no live mount at {}; stopping it",
                    status.pid,
                    volume.name,
                    volume.mountpoint,
                )
                await self._stop(volume.name, volume.mountpoint, status.pid, retire=True)
                return False
            if status is None:
                await self._clear_orphan_mount(volume)
            return False

    async def recover(self, volume: Volume) -> bool:
        """At daemon start, for a volume nobody mounts: when its cache holds files
        a killed worker did not upload, start a drain-only worker for them.
        Returns whether one was started."""
        async with self._lock(volume.name):
            if lock_holder(self._paths(volume.name).lock) is not None:
                return False  # a worker serves it, and uploads what is pending
            if not await anyio.to_thread.run_sync(has_dirty_items, self.cache_dir, volume.name):
                return False
            logger.info("volume {} has files not uploaded yet: starting a worker", volume.name)
            await self._spawn(volume, JobMode.DRAIN)
            return True

    async def shutdown(self) -> None:
        self.close_spares()
        self._reap()
        workers = list(self._workers.values())
        async with anyio.create_task_group() as tg:
            for w in workers:
                tg.start_soon(self._unmount_quietly, w.name, w.mountpoint)
            for name in list(self._lingering):
                tg.start_soon(self._retire, name)

    async def _retire(self, name: str, *, volume_removed: bool = False) -> None:
        """Tell the volume's unmounted worker, if one is still there, not to wait
        for another Mount: it exits once its uploads are done (at once when there
        are none, releasing the volume's lock within milliseconds). A removed
        volume's worker also removes the cache once it has uploaded everything."""
        worker = self._lingering.pop(name, None)
        paths = self._paths(name)
        if worker is None and lock_holder(paths.lock) is None:
            return
        try:
            await call_worker(
                paths.socket, "retire", self.control_timeout, volume_removed=volume_removed
            )
        except (WorkerUnreachable, ProtocolError) as e:
            logger.debug("no worker to retire for {}: {}", name, e)
            return
        await self._lock_released(paths, _RETIRE_WAIT)

    # --- extras for the daemon ---------------------------------------------------

    async def forget_all(self) -> None:
        """Forward the daemon's SIGHUP: every worker forgets its directory cache
        (those waiting for the next Mount too)."""
        for name in [*self._workers, *self._lingering]:
            try:
                await call_worker(self._paths(name).socket, "forget", self.control_timeout)
            except (WorkerUnreachable, ProtocolError) as e:
                logger.warning("could not tell the worker for {} to forget: {}", name, e)

    def worker_pid(self, name: str) -> int | None:
        """The pid of the worker this manager runs or adopted for `name`."""
        self._reap()
        worker = self._workers.get(name)
        return worker.pid if worker is not None else None

    def spare_pids(self) -> list[int]:
        """The pids of the spare workers waiting for the next Mounts, next first."""
        return [spare.process.pid for spare in self._spares]

    # --- spawning -------------------------------------------------------------

    async def _spawn(self, volume: Volume, mode: JobMode = JobMode.MOUNT) -> None:
        name, mp = volume.name, volume.mountpoint
        paths = self._paths(name)
        deadline = anyio.current_time() + self.mount_timeout
        mounts = mode is JobMode.MOUNT
        if mounts:
            await self._wait_for_previous_worker(name, paths)
            await self._clear_orphan_mount(volume)
            await self._prepare_mountpoint(volume)

        job = self._job(volume, mode)
        log_start = _file_size(paths.log)  # report only this run's log lines
        spare = await self._take_spare(deadline)
        if spare is not None:
            proc, read_fd = spare.process, spare.read_fd
            logger.info("mount worker {} (started ahead) serves volume {}", proc.pid, name)
        else:
            proc, read_fd = _start_worker(paths.log)
            logger.info("started mount worker {} for volume {}", proc.pid, name)
        worker = _Worker(name, mp, proc.pid, proc, paths.log)
        self._preload.add(volume.spec.backend.type)
        try:
            await anyio.to_thread.run_sync(_send_job, proc, job.to_json().encode())
            report = await self._await_readiness(read_fd, deadline)
            if report is None:
                raise MountFailed(
                    f"mount worker for {name} did not report ready within "
                    f"{self.mount_timeout:g} s and was killed"
                    + _with_tail(_read_tail(paths.log, log_start))
                )
            if not report.ready:
                raise MountFailed(report.error or await _describe_exit(proc, paths.log, log_start))
            if mounts:
                await self._verify_mounted(mp, proc)
        except BaseException as e:
            os.close(read_fd)
            worker.expected_exit = True
            await self._kill(proc, mp, unmount=mounts)
            if isinstance(e, MountFailed) or not isinstance(e, Exception):
                raise
            raise MountFailed(f"mount worker for {name} failed: {e}") from e
        os.close(read_fd)
        if mode is JobMode.DRAIN:
            worker.expected_exit = True  # it exits once the uploads are done
        elif mode is JobMode.STANDBY:
            worker.expected_exit = True  # it exits unless mounted within `linger`
            self._lingering[name] = worker
        else:
            self._workers[name] = worker
        threading.Thread(
            target=self._watch, args=(worker, proc), name=f"watch-{name}", daemon=True
        ).start()
        self._start_spares()

    def _job(self, volume: Volume, mode: JobMode = JobMode.MOUNT) -> WorkerJob:
        return WorkerJob(
            name=volume.name,
            mountpoint=volume.mountpoint,
            options=dict(volume.options),
            defaults=self.daemon_defaults,
            cache_dir=self.cache_dir,
            control_socket=self._paths(volume.name).socket,
            log_level=self.log_level,
            log_file=self.log_file,
            config_path=self.config_path,
            mode=mode,
            linger=0.0 if mode is JobMode.DRAIN else self.linger,
        )

    # --- the spare worker -------------------------------------------------------

    async def _take_spare(self, deadline: float) -> _Spare | None:
        """The next spare worker once it says it is idle (warmed up, waiting for
        its job); None if there is none ready: then a fresh worker is started,
        whose errors go to the volume's log (a spare's go nowhere until it has a
        job). A spare that died or hangs before it is idle is stopped."""
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
                return spare
            logger.warning(
                "the spare mount worker {} did not get ready (exit status {})",
                spare.process.pid,
                spare.process.returncode,
            )
        return None

    def _start_spares(self) -> None:
        while len(self._spares) < self.spare_workers:
            try:
                proc, read_fd = _start_worker(None, preload=sorted(self._preload))
            except OSError as e:
                logger.warning("could not start a spare mount worker: {}", e)
                return
            spare = _Spare(proc, read_fd)
            # Whoever drops this manager without shutdown() leaves no spare behind.
            spare.finalizer = weakref.finalize(self, _stop_spare, spare)
            self._spares.append(spare)
            logger.debug("started spare mount worker {}", proc.pid)

    def close_spares(self) -> None:
        """Stop the spare workers: they hold no volume, and exit at once."""
        spares, self._spares = self._spares, []
        for spare in spares:
            _stop_spare(spare)

    async def _await_readiness(self, fd: int, deadline: float) -> Readiness | None:
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

    async def _verify_mounted(self, mp: str, proc: subprocess.Popen[bytes]) -> None:
        # The worker says ready only after the kernel mount; allow a moment for
        # /proc/self/mountinfo anyway rather than trusting the word alone.
        with anyio.move_on_after(5):
            while not is_mounted(mp):
                if proc.poll() is not None:
                    break
                await anyio.sleep(0.01)
        if not is_mounted(mp):
            raise MountFailed(f"mount worker reported ready but {mp} is not mounted")

    async def _wait_for_previous_worker(self, name: str, paths: WorkerPaths) -> None:
        """A worker still draining (uploading after an unmount, or a drain-only
        worker) holds the volume's lock, and two workers must never share one
        cache. Wait `drain_wait` seconds for it; then stop it (SIGTERM: its uploads
        stay recorded on disk and the new worker resumes them at once) and wait
        for its lock, so the Mount still answers within Docker's timeout."""
        pid = lock_holder(paths.lock)
        if pid is None:
            return
        status = await self._probe(name)
        pending = status.extra.get("pending_uploads") if status is not None else None
        logger.info(
            "waiting up to {:g} s for the previous worker {} of volume {} to finish{}",
            self.drain_wait,
            pid,
            name,
            f" ({pending} upload(s) pending)" if pending else "",
        )
        if await self._lock_released(paths, self.drain_wait):
            return
        holder = lock_holder(paths.lock)
        if holder:
            logger.warning(
                "previous worker {} of volume {} is still uploading after {:g} s: stopping "
                "it; the new worker resumes its uploads",
                holder,
                name,
                self.drain_wait,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(holder, signal.SIGTERM)
        if await self._lock_released(paths, self.stop_wait):
            return
        raise MountFailed(
            f"the previous mount worker (pid {pid}) of volume {name} is still running "
            f"{self.drain_wait + self.stop_wait:g} s later and does not stop (hung?); "
            "try again later"
        )

    async def _lock_released(self, paths: WorkerPaths, within: float) -> bool:
        with anyio.move_on_after(within):
            delay = 0.005  # a worker that just unmounted lets go within milliseconds
            while lock_holder(paths.lock) is not None:  # another process: polled
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.1)
            return True
        return False

    async def _kill(self, proc: subprocess.Popen[bytes], mp: str, *, unmount: bool = True) -> None:
        if proc.poll() is None:
            proc.kill()
        await anyio.to_thread.run_sync(proc.wait)
        if unmount and is_mounted(mp):
            with contextlib.suppress(OSError):
                await lazy_unmount(mp)

    def _watch(self, worker: _Worker, proc: subprocess.Popen[bytes]) -> None:
        """Runs in a thread: reaps the worker and says why it went."""
        code = proc.wait()
        if worker.expected_exit:
            logger.info("mount worker {} for {} exited ({})", worker.pid, worker.name, code)
            return
        logger.error(
            "mount worker {} for volume {} died with exit code {}{}",
            worker.pid,
            worker.name,
            code,
            _with_tail(_read_tail(worker.log)),
        )

    # --- stopping -------------------------------------------------------------

    async def _stop(self, name: str, mp: str, pid: int | None, *, retire: bool = False) -> None:
        """Ask the worker to unmount (`retire`: and not to wait for another Mount);
        if it does not answer, unmount here and SIGTERM it. Returns once the mount
        is gone, without waiting for the worker to exit."""
        paths = self._paths(name)
        try:
            op = "retire" if retire else "unmount"
            reply = await call_worker(paths.socket, op, self.control_timeout)
            status = parse_status(reply)
            logger.info("worker {} unmounted {} ({})", status.pid, mp, status.state)
        except (WorkerUnreachable, ProtocolError) as e:
            if pid is not None or lock_holder(paths.lock) or is_mounted(mp):
                logger.warning("worker for {} did not unmount ({}); doing it here", name, e)
            if is_mounted(mp):
                await self._lazy_unmount(mp)
            self._terminate(name, pid)
        if is_mounted(mp):
            await self._lazy_unmount(mp)

    def _terminate(self, name: str, pid: int | None) -> None:
        holder = lock_holder(self._paths(name).lock)
        # Signal only a pid proven to be this volume's worker (it holds the lock),
        # never one that may have been reused.
        target = holder if holder else None
        if target is None and pid is not None:
            worker = self._workers.get(name)
            if worker is not None and worker.process is not None and worker.process.poll() is None:
                target = pid
        if target:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGTERM)
                logger.info("sent SIGTERM to mount worker {} of {}", target, name)

    async def _unmount_quietly(self, name: str, mp: str) -> None:
        async with self._lock(name):
            worker = self._workers.pop(name, None)
            if worker is not None:
                worker.expected_exit = True
            try:
                await self._stop(name, mp, worker.pid if worker else None, retire=True)
            except Exception as e:
                logger.error("unmounting {} at shutdown failed: {}", name, e)

    async def _lazy_unmount(self, mp: str) -> None:
        try:
            await lazy_unmount(mp)
        except OSError as e:
            raise MountFailed(str(e)) from e

    async def _mounted_and_live(self, mp: str) -> bool:
        """Whether a mount at `mp` is in use; a stale one ("Transport endpoint is not
        connected", its server dead) is cleared first and counts as not mounted."""
        if not is_mounted(mp):
            return False
        stale = await probe_stale(mp)
        if stale is None:
            logger.warning("the mount at {} does not answer; leaving it alone", mp)
            return True
        if not stale:
            return True
        await self._lazy_unmount(mp)
        logger.warning("cleared a stale FUSE mount at {}", mp)
        return False

    async def _clear_orphan_mount(self, volume: Volume) -> None:
        """With no worker answering for the volume, a FUSE mount at its mountpoint
        is a leftover: detach it. If a worker process still holds the volume's lock
        (hung, or slow to answer), only a provably dead mount is cleared."""
        holder = lock_holder(self._paths(volume.name).lock)
        if holder is None and _fuse_mounted(volume.mountpoint):
            logger.warning("clearing a leftover FUSE mount at {}", volume.mountpoint)
            await self._lazy_unmount(volume.mountpoint)
        else:
            await self._mounted_and_live(volume.mountpoint)

    # --- bookkeeping ----------------------------------------------------------

    async def _probe(self, name: str) -> WorkerStatus | None:
        try:
            return parse_status(
                await call_worker(self._paths(name).socket, "status", self.control_timeout)
            )
        except (WorkerUnreachable, ProtocolError) as e:
            logger.debug("no live worker for {}: {}", name, e)
            return None

    def _is_live_mount(self, status: WorkerStatus, volume: Volume) -> bool:
        mp = volume.mountpoint
        return status.mountpoint == mp and is_mounted(mp)

    def _adopt(self, volume: Volume, status: WorkerStatus) -> None:
        self._workers[volume.name] = _Worker(
            volume.name, volume.mountpoint, status.pid, None, self._paths(volume.name).log
        )

    def _reap(self) -> None:
        """Forget workers that are gone; those this process spawned are reported by
        their watcher thread, adopted ones here (they are not our children)."""
        for name, worker in list(self._lingering.items()):
            if worker.process is not None and worker.process.poll() is not None:
                del self._lingering[name]
            elif worker.process is None and lock_holder(self._paths(name).lock) != worker.pid:
                del self._lingering[name]
        for name, worker in list(self._workers.items()):
            if worker.process is not None:
                if worker.process.poll() is not None:
                    del self._workers[name]
                continue
            if lock_holder(self._paths(name).lock) != worker.pid:
                del self._workers[name]
                logger.error(
                    "adopted mount worker {} for volume {} is gone{}",
                    worker.pid,
                    name,
                    _with_tail(_read_tail(worker.log)),
                )

    def _paths(self, name: str) -> WorkerPaths:
        return worker_paths(self.cache_dir, name)

    def _lock(self, name: str) -> anyio.Lock:
        # Per volume: a slow mount of one volume never blocks another.
        return self._locks.setdefault(name, anyio.Lock())


async def _describe_exit(proc: subprocess.Popen[bytes], log: str, log_start: int) -> str:
    """Why a worker went away without a report: its exit status and its own words."""
    with anyio.move_on_after(5):
        while proc.poll() is None:  # noqa: ASYNC110 (the watcher thread owns wait())
            await anyio.sleep(0.05)
    code = proc.poll()
    status = "is still running" if code is None else f"exited with status {code}"
    return f"mount worker {status} without reporting ready" + _with_tail(_read_tail(log, log_start))


def _make_mountpoint(mp: str) -> None:
    if os.path.isdir(mp):
        return
    os.makedirs(os.path.dirname(mp) or "/", exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(mp, 0o755)
    os.chmod(mp, 0o755)  # the daemon's umask must not narrow it


def _fuse_mounted(mp: str) -> bool:
    entry = mount_at(mp)
    return entry is not None and entry.fstype.startswith("fuse")


def _start_worker(
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


def _read_tail(path: str, start: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(start, size - _TAIL_BYTES))
            return log_tail(f.read().decode(errors="replace"))
    except OSError:
        return ""


def _with_tail(tail: str) -> str:
    return f"; last lines of its log:\n{tail}" if tail.strip() else ""
