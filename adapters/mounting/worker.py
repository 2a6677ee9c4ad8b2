"""One volume's FUSE process: builds the storage and VFS from the job's raw options,
serves the mount, and answers the daemon on its control socket.

Never strand data: once the mount has gone (the daemon's `unmount`, SIGTERM, or
anyone's `fusermount3 -u`), the worker uploads every pending file before it
exits, holding the volume's lock until then, so no second worker can start on
the same cache meanwhile. A second SIGTERM stops the uploads (they stay recorded
on disk, and the next worker of the volume resumes them). A `drain_only` job
serves no mount at all: it uploads what a killed worker left, then exits.

The process main (argument parsing, logging, readiness fd) is
`entrypoints.mount_worker`; this module is the part worth testing and reusing."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

import anyio
from anyio.abc import SocketListener, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from loguru import logger

from adapters.cache import DiskCacheStore, cache_root
from adapters.config import load_rclone_config
from adapters.fuse import run_fuse
from adapters.mounting.protocol import (
    MAX_LINE,
    ProtocolError,
    WorkerJob,
    WorkerState,
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
from adapters.storage.factory import DefaultStorageFactory
from application.vfs import Vfs
from domain.errors import MountFailed
from domain.volume import MountOptions
from domain.volume_options import parse_volume_options

# Backends whose modification times cost an extra request per file: a fast
# fingerprint leaves them out.
_SLOW_MODTIME = frozenset({"s3", "swift", "ftp", "qingstor"})
# Longest a control request may hold up the worker's exit (a lazy unmount is quick).
_ANSWER_WITHIN = 10.0


class MountWorker:
    """Runs one mount until it is unmounted (by the daemon, a signal, or anyone
    running `fusermount3 -u`), then finishes pending work and returns.

    `report` receives the readiness line exactly once: `ready`, or nothing (the
    caller then reports the exception `run` raises)."""

    def __init__(self, job: WorkerJob, report: Callable[[bytes], None]) -> None:
        self.job = job
        self.state: WorkerState = "starting"
        self._report = report
        self._vfs: Vfs | None = None
        self._start_scope: anyio.CancelScope | None = None
        self._drain_scope: anyio.CancelScope | None = None
        self._stop_drain = False
        self._stopped_early = False

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

    async def _run_locked(self) -> None:
        # The worker re-reads the config file: a restarted worker sees its current remotes.
        config = load_rclone_config(self.job.config_path) if self.job.config_path else None
        spec = parse_volume_options(self.job.options, self.job.defaults, config).spec
        if not self.job.drain_only:
            self._check_mountpoint(spec.mount)
        storage = DefaultStorageFactory().create(spec.backend)
        vfs: Vfs | None = None
        try:
            await storage.check()
            vfs = self._vfs = Vfs(
                storage,
                spec.vfs,
                cache_store=DiskCacheStore(cache_root(self.job.cache_dir, self.job.name)),
                slow_modtime=spec.backend.type in _SLOW_MODTIME,
            )
            await vfs.start()
            fsname = f"{spec.backend.type}:{spec.backend.root}"
            async with anyio.create_task_group() as tg:
                listener = await self._listen()
                tg.start_soon(self._serve_control, listener)
                tg.start_soon(self._watch_signals)
                if self.job.drain_only:
                    self.state = "draining"
                    self._report(encode_ready())
                else:
                    with anyio.CancelScope() as self._start_scope:
                        await run_fuse(vfs, self.job.mountpoint, fsname, spec.mount, self._on_ready)
                    if self.state == "starting":
                        raise MountFailed(
                            "stopped before the mount was ready"
                            if self._stopped_early
                            else "the FUSE session ended before the mount was ready"
                        )
                # run_fuse returns once the kernel let go of the mount and the VFS
                # released its handles; what is left is uploading.
                self.state = "draining"
                await self._drain(vfs)
                tg.cancel_scope.cancel()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.job.control_socket)
            with anyio.CancelScope(shield=True):
                if vfs is not None:
                    await vfs.stop()
                await storage.aclose()
        logger.info("mount worker done")

    async def _drain(self, vfs: Vfs) -> None:
        pending = vfs.pending_uploads()
        if pending:
            logger.info("uploading {} pending file(s) before exiting", pending)
        with anyio.CancelScope() as self._drain_scope:
            if self._stop_drain:
                self._drain_scope.cancel()
            await vfs.drain()
        if self._drain_scope.cancelled_caught or self._stop_drain:
            logger.warning(
                "stopped with {} file(s) not uploaded; they stay in the cache and are "
                "uploaded by the next worker of this volume",
                vfs.pending_uploads(),
            )

    def _check_mountpoint(self, options: MountOptions) -> None:
        mp = self.job.mountpoint
        if is_mounted(mp):  # first: stat of a stale mount would fail confusingly
            raise MountFailed(f"directory {mp} is already mounted")
        if not os.path.isdir(mp):
            raise MountFailed(f"mountpoint {mp} does not exist or is not a directory")
        if not options.allow_non_empty and os.listdir(mp):
            raise MountFailed(
                f"mountpoint {mp} is not empty, use allow-non-empty=true to mount anyway"
            )

    def _on_ready(self) -> None:
        self.state = "mounted"
        logger.info("mounted {} at {}", self.job.name, self.job.mountpoint)
        self._report(encode_ready())

    async def unmount(self) -> None:
        """Take the mount away now (lazily, so a busy mount does not refuse); run()
        then returns once the kernel drops the session and pending work is done."""
        if self.state == "draining":
            return
        if self.state == "starting" and not self.job.drain_only:
            self._stopped_early = True
            if self._start_scope is not None:
                self._start_scope.cancel()
            return
        self.state = "draining"
        if is_mounted(self.job.mountpoint):
            await lazy_unmount(self.job.mountpoint)

    def forget(self) -> None:
        if self._vfs is not None:
            self._vfs.forget_all()

    async def _listen(self) -> SocketListener:
        path = self.job.control_socket
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
            op = parse_request(line)
        except ProtocolError as e:
            return error_reply(str(e))
        logger.debug("control request {}", op)
        try:
            if op == "unmount":
                await self.unmount()
            elif op == "forget":
                self.forget()
        except Exception as e:
            logger.exception("control request {} failed", op)
            return error_reply(f"{op} failed: {e}")
        return ok_reply(
            pid=os.getpid(),
            mountpoint=self.job.mountpoint,
            state=self.state,
            volume=self.job.name,
            pending_uploads=self._vfs.pending_uploads() if self._vfs is not None else 0,
        )

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    logger.info("SIGHUP: forgetting the directory cache")
                    self.forget()
                    continue
                name = signal.Signals(signum).name
                if self.state == "draining":
                    logger.info("{} while uploading: stopping the uploads", name)
                    self._stop_drain = True
                    if self._drain_scope is not None:
                        self._drain_scope.cancel()
                    continue
                logger.info("{}: unmounting", name)
                try:
                    await self.unmount()
                except OSError as e:
                    logger.error("unmount on {} failed: {}", signal.Signals(signum).name, e)
