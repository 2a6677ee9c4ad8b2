"""Serving a `Vfs` as a FUSE mount with pyfuse3.

pyfuse3 keeps its session in module globals, so there is one mount per process:
call `run_fuse` from a process of its own (the mount worker). It switches pyfuse3
to asyncio mode itself, so it must run under an asyncio event loop (anyio's asyncio
backend included) and nothing in the process may use pyfuse3 with trio.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import Callable

import anyio
import pyfuse3
import pyfuse3.asyncio
from loguru import logger

from adapters.fuse.operations import FuseOperations
from application.vfs import Vfs
from domain.errors import OptionError
from domain.volume import MountOptions

_READY_TIMEOUT = 30.0
_KERNEL_READ_AHEAD = 128 * 1024  # the kernel's own default for a FUSE mount


class _StaleRepliesAtDebug(logging.Filter):
    """pyfuse3 logs at ERROR a reply the kernel no longer waits for (ENOENT: the
    request was interrupted, or the release came after a lazy unmount). Nothing
    is lost then, so it is shown at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR:
            message = record.getMessage()
            if "fuse_reply_* failed with" in message and "No such file or directory" in message:
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def _quiet_stale_replies() -> None:
    pyfuse3_log = logging.getLogger("pyfuse3")
    if not any(isinstance(f, _StaleRepliesAtDebug) for f in pyfuse3_log.filters):
        pyfuse3_log.addFilter(_StaleRepliesAtDebug())


def _unescape(field: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and i + 4 <= len(field):
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_device(mountpoint: str) -> str | None:
    """The "major:minor" of the mount at `mountpoint`, or None when nothing is
    mounted there (the last mount on a path is the one that shows).

    Never stats the mountpoint itself: that would wait on the FUSE session, and
    from the thread running it, forever."""
    absolute = os.path.abspath(mountpoint)
    target = os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and _unescape(fields[4]) == target:
                found = fields[2]
    return found


def fuse_options(fsname: str, options: MountOptions, read_only: bool) -> set[str]:
    """The libfuse `-o` options for a mount (what pyfuse3.init accepts)."""
    if not options.async_read:
        # libfuse 3 only takes sync_read through fuse_parse_conn_info_opts, which
        # pyfuse3 does not call; pyfuse3 always asks for asynchronous reads.
        raise OptionError("async-read=false is not supported (pyfuse3 always reads asynchronously)")
    name = (options.devname or fsname).replace("\\", "\\\\").replace(",", "\\,")
    opts = {f"fsname={name}", "subtype=cloudvol"}
    if options.allow_other:
        opts.add("allow_other")
        if options.allow_root:
            logger.warning("allow-root ignored: allow-other already lets root in")
    elif options.allow_root:
        opts.add("allow_root")
    if options.default_permissions:
        opts.add("default_permissions")
    if options.debug_fuse:
        opts.add("debug")
    if read_only:
        opts.add("ro")  # the kernel then refuses writes before they reach us
    raw = list(options.extra_options)
    flags = iter(options.fuse_flags)
    for flag in flags:
        # --fuse-flag passes libfuse arguments; only -o options reach pyfuse3.
        if flag == "-o":
            raw.append(next(flags, ""))
        elif flag.startswith("-o"):
            raw.append(flag[2:])
        else:
            raise OptionError(f"fuse flag {flag!r} is not supported: only -o options are")
    for item in raw:
        opts.update(o.strip() for o in item.split(",") if o.strip())
    return opts


def _set_read_ahead(device: str, size: int) -> None:
    # libfuse 3's max_readahead is another connection option pyfuse3 cannot pass;
    # the kernel's per-device setting has the same effect.
    path = f"/sys/class/bdi/{device}/read_ahead_kb"
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(str(max(size // 1024, 0)))
    except OSError as exc:
        logger.warning("could not set read-ahead ({}): {!r}", path, exc)


async def run_fuse(
    vfs: Vfs,
    mountpoint: str,
    fsname: str,
    options: MountOptions,
    on_ready: Callable[[], None],
) -> None:
    """Mount `vfs` at `mountpoint` and serve it until the mount goes away (someone
    runs `fusermount3 -u`) or this task is cancelled; either way the session is
    closed and the mount removed before returning. The caller checks the mountpoint
    first (`adapters.mounting.mountpoint`). `on_ready` is called once, when
    the kernel mount is live and answering. Handles still open at the end are
    released (uploads committed) with `vfs.aclose()`."""
    pyfuse3.asyncio.enable()
    _quiet_stale_replies()
    opts = fuse_options(fsname, options, vfs.options.read_only)
    initialised = asyncio.Event()
    ops = FuseOperations(
        vfs,
        options.attr_timeout,
        write_back_cache=options.write_back_cache,
        on_init=initialised.set,
        direct_io=options.direct_io,
    )
    logger.debug("mounting {} with options {}", mountpoint, sorted(opts))
    pyfuse3.init(ops, mountpoint, opts)
    main: asyncio.Task[None] | None = None
    try:
        main = asyncio.get_running_loop().create_task(pyfuse3.main())
        await _wait_ready(mountpoint, initialised, main)
        device = mount_device(mountpoint)
        if device is not None and options.max_read_ahead != _KERNEL_READ_AHEAD:
            _set_read_ahead(device, options.max_read_ahead)
        on_ready()
        await asyncio.shield(main)
    finally:
        with anyio.CancelScope(shield=True):
            if main is not None and not main.done():
                pyfuse3.terminate()  # wake the session loops so main() returns
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(main), 10)
            still_mounted = mount_device(mountpoint) is not None
            pyfuse3.close(unmount=still_mounted)
            await vfs.aclose()
            if main is not None and main.done() and not main.cancelled():
                exc = main.exception()
                if exc is not None:
                    logger.error("FUSE session failed: {!r}", exc)


async def _wait_ready(
    mountpoint: str, initialised: asyncio.Event, main: asyncio.Task[None]
) -> None:
    # pyfuse3.init did the mount(2); the kernel sends INIT at once, and main()
    # answers it. Ready means both: the mount is listed and INIT is done.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _READY_TIMEOUT
    while not (initialised.is_set() and mount_device(mountpoint) is not None):
        if main.done():
            main.result()  # raises the session's error, if it had one
            raise OSError(errno.EIO, f"FUSE session for {mountpoint} ended before it was ready")
        if loop.time() > deadline:
            raise TimeoutError(f"FUSE mount at {mountpoint} not ready after {_READY_TIMEOUT}s")
        await asyncio.sleep(0.01)
