"""One volume's FUSE process: serves the mount of the VFS it is given (the
`WorkerContainer` builds the storage, cache and VFS from the job), and answers
the daemon on its control socket. What each event means is decided by the pure
`domain.worker_lifecycle.WorkerLifecycle`; this runs it.

Never strand data: once the mount has gone (the daemon's `unmount`, SIGTERM, or
anyone's `fusermount3 -u`), the worker uploads every pending file before it
exits, holding the volume's lock until then, so no second worker can start on
the same cache meanwhile. A second SIGTERM stops the uploads (they stay recorded
on disk, and the next worker of the volume resumes them). A drain job serves no
mount at all: it uploads what a killed worker left, then exits.

The process main (argument parsing, logging, readiness fd) is
`entrypoints.mount_worker`; this module is the part worth testing and reusing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import anyio
from anyio.abc import SocketListener, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from loguru import logger

from adapters.mounting.mountpoint import check_mountpoint
from adapters.mounting.protocol import (
    MAX_LINE,
    ProtocolError,
    WorkerJob,
    encode_ready,
    error_reply,
    ok_reply,
    parse_request,
    worker_paths,
)
from adapters.mounting.system import (
    is_mounted,
    lazy_unmount,
    lock_holder,
    try_lock,
    write_lock_owner,
)
from adapters.mounting.volume_cache import remove_volume_cache
from adapters.mounting.worker_admin import ADMIN_OPS, ExtraStats, admin_reply, report_drain_progress
from application.ports import RemoteStorage
from application.vfs import Vfs
from domain.errors import MountFailed
from domain.volume import MountOptions, VolumeSpec
from domain.worker_lifecycle import (
    JobMode,
    UnmountAction,
    WorkerLifecycle,
    WorkerState,
    same_job_apart_from_mode,
)

# Longest a control request may hold up the worker's exit (a lazy unmount is quick).
_ANSWER_WITHIN = 10.0


class MountFrontend(Protocol):
    """Serves `vfs` at `mountpoint` until the mount goes away or the task is
    cancelled (`adapters.fuse.run_fuse`); calls `on_ready` once it is live."""

    async def __call__(
        self,
        vfs: Vfs,
        mountpoint: str,
        fsname: str,
        options: MountOptions,
        on_ready: Callable[[], None],
        /,
    ) -> None: ...


class MountWorker:
    """Runs one volume's mounts, one after another, until it retires: after an
    unmount it uploads what is pending, then waits `job.linger` seconds for the
    next mount before it exits. Docker mounts a volume twice per `docker run`,
    and the next container often follows soon: a mount served by the worker that
    is still there costs milliseconds, and needs no new connection to the remote.

    `report` receives the readiness line exactly once, for the first mount:
    `ready`, or nothing (the caller then reports the exception `run` raises).
    Later mounts are asked for, and answered, on the control socket."""

    def __init__(
        self,
        job: WorkerJob,
        spec: VolumeSpec,
        storage: RemoteStorage,
        vfs: Vfs,
        frontend: MountFrontend,
        report: Callable[[bytes], None],
        *,
        config_stamp: ConfigStamp,
        extra_stats: ExtraStats = dict,
    ) -> None:
        """`config_stamp`: the config file as it was when `spec` was parsed from it.
        `extra_stats`: more of the `stats` reply (see `worker_admin`)."""
        self.job = job
        self.extra_stats = extra_stats
        self.started_at = time.time()
        self.lifecycle = WorkerLifecycle(job.mode)
        self._spec = spec
        self._storage = storage
        self._vfs = vfs
        self._vfs_started = False
        self._frontend = frontend
        self._report = report
        self._start_scope: anyio.CancelScope | None = None
        self._drain_scope: anyio.CancelScope | None = None
        self._wake = asyncio.Event()  # a mount was asked for, or the worker retires
        self._mount_answer: asyncio.Future[None] | None = None
        self._config_stamp = config_stamp

    async def run(self) -> None:
        paths = worker_paths(self.job.cache_dir, self.job.name)
        os.makedirs(paths.directory, mode=0o700, exist_ok=True)
        lock_fd = try_lock(paths.lock)
        if lock_fd is None:
            raise MountFailed(
                f"volume {self.job.name!r} is already served by mount worker "
                f"pid {lock_holder(paths.lock)}"
            )
        try:
            write_lock_owner(lock_fd, os.getpid())
            await self._run_locked()
        finally:
            # Closing the fd releases the lock; the file stays (removing it would race).
            os.close(lock_fd)

    @property
    def state(self) -> WorkerState:
        return self.lifecycle.state

    # Read by `worker_admin`.
    spec = property(lambda self: self._spec)
    vfs = property(lambda self: self._vfs)
    vfs_started = property(lambda self: self._vfs_started)
    pid = property(lambda self: os.getpid())

    async def _run_locked(self) -> None:
        spec, vfs, life = self._spec, self._vfs, self.lifecycle
        if life.mode is JobMode.MOUNT:
            self._check_mountpoint(spec.mount)
        try:
            await self._storage.check()
            await vfs.start()
            self._vfs_started = True
            fsname = f"{spec.backend.type}:{spec.backend.root}"
            async with anyio.create_task_group() as tg:
                listener = await self._listen()
                tg.start_soon(self._serve_control, listener)
                tg.start_soon(self._watch_signals)
                life.connected()
                if life.mode is JobMode.MOUNT:
                    await self._serve(fsname, spec.mount, first=True)
                    if life.never_ready():
                        raise MountFailed(
                            "stopped before the mount was ready"
                            if life.stopped_early
                            else "the FUSE session ended before the mount was ready"
                        )
                else:
                    self._report(encode_ready())
                while await self._next_mount():
                    await self._serve(fsname, spec.mount, first=False)
                tg.cancel_scope.cancel()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.job.control_socket)
            with anyio.CancelScope(shield=True):
                if self._vfs_started:
                    await vfs.stop()
                await self._storage.aclose()
        # Still holding the lock: no new worker can be using this cache.
        if life.volume_removed and self._vfs_started:
            if await remove_volume_cache(self.job.cache_dir, self.job.name):
                logger.info("the volume was removed: its cache is gone too")
        logger.info("mount worker done")

    async def _serve(self, fsname: str, options: MountOptions, *, first: bool) -> None:
        """One mount, until it goes; the frontend returns once the kernel let go of
        it and the VFS released its handles. The first mount's failure is the
        worker's (raised); a later one's goes to the control request that asked."""
        self.lifecycle.mount_starting()
        try:
            with anyio.CancelScope() as self._start_scope:
                if not first:
                    self._check_mountpoint(options)
                await self._frontend(
                    self._vfs,
                    self.job.mountpoint,
                    fsname,
                    options,
                    self._on_first_ready if first else self._on_later_ready,
                )
        except Exception as e:
            if first:
                raise
            logger.error("mount failed: {}", e)
            self._answer_mount(e)
        finally:
            self._start_scope = None
        if self.lifecycle.never_ready() and not first:
            self._answer_mount(MountFailed("stopped before the mount was ready"))

    async def _next_mount(self) -> bool:
        """After an unmount: upload what is pending (a mount asked for meanwhile is
        served at once, the uploads go on under it), then wait `linger` seconds for
        a mount. Returns whether to mount again."""
        life = self.lifecycle
        life.unmounted()
        if not life.mount_wanted:
            async with anyio.create_task_group() as tg:

                async def drain() -> None:
                    await self._drain()
                    tg.cancel_scope.cancel()

                tg.start_soon(drain)
                while not life.mount_wanted:
                    self._wake.clear()
                    await self._wake.wait()
                tg.cancel_scope.cancel()
        if life.lingers(self.job.linger):
            with anyio.move_on_after(self.job.linger):
                while not (life.mount_wanted or life.retiring):
                    self._wake.clear()
                    await self._wake.wait()
        if life.mounts_again():
            return True
        self._answer_mount(MountFailed("the worker is exiting"))
        return False

    async def _drain(self) -> None:
        life, vfs = self.lifecycle, self._vfs
        pending = vfs.pending_uploads()
        if pending:
            logger.info("uploading {} pending file(s)", pending)
        life.uploads_started()
        try:
            with anyio.CancelScope() as self._drain_scope:
                if life.uploads_stopped:
                    self._drain_scope.cancel()
                async with anyio.create_task_group() as progress:
                    progress.start_soon(report_drain_progress, self)
                    await vfs.drain()
                    progress.cancel_scope.cancel()
        finally:
            self._drain_scope = None
            life.uploads_ended()
        if life.uploads_stopped:
            logger.warning(
                "stopped with {} file(s) not uploaded; they stay in the cache and are "
                "uploaded by the next worker of this volume",
                vfs.pending_uploads(),
            )

    def _check_mountpoint(self, options: MountOptions) -> None:
        check_mountpoint(self.job.mountpoint, allow_non_empty=options.allow_non_empty)

    def _on_first_ready(self) -> None:
        self.lifecycle.mount_ready()
        logger.info("mounted {} at {}", self.job.name, self.job.mountpoint)
        self._report(encode_ready())

    def _on_later_ready(self) -> None:
        self.lifecycle.mount_ready()
        logger.info("mounted {} at {} again", self.job.name, self.job.mountpoint)
        self._answer_mount(None)

    def _answer_mount(self, error: BaseException | None) -> None:
        answer, self._mount_answer = self._mount_answer, None
        if answer is not None and not answer.done():
            if error is None:
                answer.set_result(None)
            else:
                answer.set_exception(error)

    async def unmount(self) -> None:
        """Take the mount away now (lazily, so a busy mount does not refuse); the
        uploads then go on, and the worker waits for the next mount."""
        action = self.lifecycle.unmount()
        if action is UnmountAction.CANCEL_START and self._start_scope is not None:
            self._start_scope.cancel()
        elif action is UnmountAction.UNMOUNT and is_mounted(self.job.mountpoint):
            await lazy_unmount(self.job.mountpoint)

    async def retire(self, *, volume_removed: bool = False) -> None:
        """Unmount if mounted, and exit once the uploads are done (and, for a
        removed volume, remove its cache once nothing is left to upload)."""
        self.lifecycle.retire(volume_removed=volume_removed)
        self._wake.set()
        await self.unmount()

    async def mount(self, raw_job: object) -> None:
        """Serve the mount again, for the daemon's Mount; returns once it is live.
        Refused unless the job is the one this worker runs (the daemon's flags,
        and the config file, unchanged since it started)."""
        try:
            job = WorkerJob.from_json(json.dumps(raw_job))
        except (ProtocolError, TypeError, ValueError) as e:
            raise MountFailed(f"bad job: {e}") from None
        if not same_job_apart_from_mode(self.job.mode, job.mode) or (
            replace(job, mode=self.job.mode) != self.job
        ):
            raise MountFailed("the job differs from this worker's: start a new worker")
        if stamp_config_file(job.config_path) != self._config_stamp:
            raise MountFailed("the config file changed since this worker started")
        if self.lifecycle.retiring:
            raise MountFailed("the worker is exiting")
        if self.state == "mounted" and is_mounted(self.job.mountpoint):
            return
        refusal = self.lifecycle.refuse_mount(answer_pending=self._mount_answer is not None)
        if refusal is not None:
            raise MountFailed(refusal)
        answer = self._mount_answer = asyncio.get_running_loop().create_future()
        self._wake.set()
        await answer

    def forget(self) -> None:
        self._vfs.forget_all()

    async def _listen(self) -> SocketListener:
        path = self.job.control_socket
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)  # SHORT_SOCKET_DIR
        # Holding the volume's lock makes any socket file left here a dead worker's.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return await anyio.create_unix_listener(path, mode=0o600)

    async def _serve_control(self, listener: SocketListener) -> None:
        async with listener:
            await listener.serve(self._handle_client)

    async def _handle_client(self, stream: SocketStream) -> None:
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            while True:
                try:
                    line = await reader.receive_until(b"\n", MAX_LINE)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                    return
                except anyio.DelimiterNotFound:
                    await stream.send(error_reply("request line too long"))
                    return
                # Shielded: an `unmount` ends the session, and run() then cancels
                # the control server; the daemon must still get its answer, or it
                # would take the worker for hung and unmount and SIGTERM it itself.
                with anyio.CancelScope(shield=True), anyio.move_on_after(_ANSWER_WITHIN):
                    reply = await self._dispatch(line)
                    try:
                        await stream.send(reply)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        return

    async def _dispatch(self, line: bytes) -> bytes:
        try:
            op, fields = parse_request(line)
        except ProtocolError as e:
            return error_reply(str(e))
        logger.debug("control request {}", op)
        try:
            if op in ADMIN_OPS:
                extra = await admin_reply(self, op, fields)
                return ok_reply(
                    pid=os.getpid(), mountpoint=self.job.mountpoint, state=self.state, **extra
                )
            if op == "unmount":
                await self.unmount()
            elif op == "retire":
                await self.retire(volume_removed=fields.get("volume_removed") is True)
            elif op == "mount":
                await self.mount(fields.get("job"))
            elif op == "forget":
                self.forget()
        except MountFailed as e:
            return error_reply(f"{op} refused: {e}")
        except Exception as e:
            logger.exception("control request {} failed", op)
            return error_reply(f"{op} failed: {e}")
        return ok_reply(
            pid=os.getpid(),
            mountpoint=self.job.mountpoint,
            state=self.state,
            volume=self.job.name,
            pending_uploads=self._vfs.pending_uploads() if self._vfs_started else 0,
        )

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    logger.info("SIGHUP: forgetting the directory cache")
                    self.forget()
                    continue
                name = signal.Signals(signum).name
                if self.lifecycle.stop_signal():
                    logger.info("{} while uploading: stopping the uploads", name)
                    if self._drain_scope is not None:
                        self._drain_scope.cancel()
                    await self.retire()
                    continue
                logger.info("{}: unmounting, and exiting once the uploads are done", name)
                try:
                    await self.retire()
                except OSError as e:
                    logger.error("unmount on {} failed: {}", signal.Signals(signum).name, e)


ConfigStamp = tuple[int, int] | None


def stamp_config_file(path: str | None) -> ConfigStamp:
    """What tells a changed config file: its size and modification time."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)
