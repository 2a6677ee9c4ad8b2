"""One volume's FUSE process: builds the storage and VFS from the job's raw options,
serves the mount, and answers the daemon on its control socket.

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
        self._check_mountpoint(spec.mount)
        storage = DefaultStorageFactory().create(spec.backend)
        try:
            await storage.check()
            vfs = self._vfs = Vfs(storage, spec.vfs)
            fsname = f"{spec.backend.type}:{spec.backend.root}"
            async with anyio.create_task_group() as tg:
                listener = await self._listen()
                tg.start_soon(self._serve_control, listener)
                tg.start_soon(self._watch_signals)
                with anyio.CancelScope() as self._start_scope:
                    await run_fuse(vfs, self.job.mountpoint, fsname, spec.mount, self._on_ready)
                if self.state == "starting":
                    raise MountFailed(
                        "stopped before the mount was ready"
                        if self._stopped_early
                        else "the FUSE session ended before the mount was ready"
                    )
                # run_fuse returns once the kernel let go of the mount and the VFS
                # released its handles (committing uploads); nothing is left to serve.
                self.state = "draining"
                tg.cancel_scope.cancel()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.job.control_socket)
            with anyio.CancelScope(shield=True):
                await storage.aclose()
        logger.info("mount worker done")

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
        if self.state == "starting":
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
            pid=os.getpid(), mountpoint=self.job.mountpoint, state=self.state, volume=self.job.name
        )

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    logger.info("SIGHUP: forgetting the directory cache")
                    self.forget()
                    continue
                logger.info("{}: unmounting", signal.Signals(signum).name)
                try:
                    await self.unmount()
                except OSError as e:
                    logger.error("unmount on {} failed: {}", signal.Signals(signum).name, e)
