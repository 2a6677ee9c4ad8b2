"""The operating-system side of mounting: mountinfo, stale mounts, lazy unmounts,
per-volume lock files and the control-socket client. Shared by the daemon's
manager and the worker."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from adapters.mounting.protocol import MAX_LINE, MountEntry, decode_message, find_mount, request

# A FUSE mount whose server died answers every call with one of these.
_STALE_ERRNOS = (errno.ENOTCONN, errno.ECONNABORTED)


def read_mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def canonical(path: str) -> str:
    """`path` as mountinfo spells it. Only the parent is resolved: an lstat of a
    live FUSE mountpoint goes to its server, and from the serving process itself
    (the worker) that deadlocks."""
    path = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def mount_at(path: str) -> MountEntry | None:
    return find_mount(read_mountinfo(), canonical(path))


def is_mounted(path: str) -> bool:
    return mount_at(path) is not None


def is_stale(path: str) -> bool:
    """True for "Transport endpoint is not connected": a FUSE mount left by a dead server.
    Blocks if the server is alive but hung; see `probe_stale`."""
    try:
        os.stat(path)
    except OSError as e:
        return e.errno in _STALE_ERRNOS
    return False


async def probe_stale(path: str, answer_within: float = 5.0) -> bool | None:
    """`is_stale` off the event loop; None if the mount did not answer in time (a
    hung or just slow server: not proof of death, so callers leave it alone)."""
    with anyio.move_on_after(answer_within):
        return await anyio.to_thread.run_sync(is_stale, path, abandon_on_cancel=True)
    return None


async def lazy_unmount(path: str) -> None:
    """Detach the mount at `path` now; a busy mount goes away when its last user does.

    Raises OSError with the tool's own message if the mount is still there."""
    errors = []
    for argv in (["fusermount3", "-u", "-z", path], ["umount", "-l", path]):
        if shutil.which(argv[0]) is None:
            continue
        result = await anyio.run_process(argv, check=False)
        if result.returncode == 0 or not is_mounted(path):
            return
        errors.append(result.stderr.decode(errors="replace").strip())
    if is_mounted(path):
        raise OSError(errno.EBUSY, f"cannot unmount {path}: {'; '.join(errors)}")


# --- lock files: one worker per volume --------------------------------------


def try_lock(path: str) -> int | None:
    """An fd holding an exclusive flock on `path`, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_lock_owner(fd: int, pid: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid}\n".encode(), 0)


def lock_holder(path: str) -> int | None:
    """The pid of the live worker holding `path`'s lock, or None if nobody holds it.
    The pid is read from the file only while the lock is proven held, so a pid
    left in the file by a dead worker is never trusted."""
    if not os.path.exists(path):
        return None
    fd = try_lock(path)
    if fd is not None:
        os.close(fd)
        return None
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except OSError:
        return None
    # The holder may be between taking the lock and writing its pid: report 0.
    return int(text) if text.isdigit() else 0


# --- control-socket client ----------------------------------------------------


class WorkerUnreachable(Exception):
    """Nobody answers on the control socket (no worker, or a hung one)."""


async def call_worker(
    socket_path: str, op: str, answer_within: float = 10.0, **fields: Any
) -> dict[str, Any]:
    """Send one request (`fields` go along with the op) and return the decoded reply."""
    try:
        with anyio.fail_after(answer_within):
            async with await anyio.connect_unix(socket_path) as stream:
                await stream.send(request(op, **fields))
                reader = BufferedByteReceiveStream(stream)
                line = await reader.receive_until(b"\n", MAX_LINE)
    except TimeoutError as e:
        raise WorkerUnreachable(
            f"worker at {socket_path} did not answer {op!r} in {answer_within:g} s"
        ) from e
    except (
        OSError,
        anyio.BrokenResourceError,
        anyio.EndOfStream,
        anyio.IncompleteRead,
        anyio.DelimiterNotFound,
    ) as e:
        cause = e.__cause__ if isinstance(e, anyio.BrokenResourceError) else e
        raise WorkerUnreachable(f"worker at {socket_path}: {cause or type(e).__name__}") from e
    return decode_message(line)
