"""What each VFS cache mode allows, which cached items to evict, and how long to
wait before retrying a failed upload.

The open rules follow rclone's code (vfs/file.go Open, read_write.go, write.go)
where it differs from its documentation:
- O_RDONLY|O_TRUNC is refused with EINVAL in every mode; the doc says mode off
  opens it write-only.
- In mode off an existing file opened for writing without O_TRUNC is not
  treated as truncated (the doc says it is): the handle refuses the first write
  with EPERM unless the file was truncated to 0 first, so that refusal is the
  handle's job and not `plan_open`'s.
- O_APPEND counts as wanting to read, so in mode minimal a write-only append
  open is cached and the append honoured; the doc says minimal ignores it.
- A file that already has a cache item (open elsewhere, or dirty on disk) is
  opened through the cache in every mode but off, whatever the flags.
"""

from __future__ import annotations

import errno as errno_codes
from collections.abc import Sequence
from dataclasses import dataclass

from domain.errors import CloudvolError
from domain.volume import CacheMode


class OpenRefused(CloudvolError):
    """The cache mode (or --read-only) forbids this open; `errno` is what the
    program gets."""

    def __init__(self, errno: int, reason: str) -> None:
        super().__init__(reason)
        self.errno = errno
        self.reason = reason

    def to_oserror(self) -> OSError:
        return OSError(self.errno, self.reason)


@dataclass(frozen=True)
class OpenRequest:
    """The open(2) flags that matter, decoded, plus whether the file exists.

    readable/writable come from the access mode: O_RDONLY is (True, False),
    O_WRONLY (False, True), O_RDWR (True, True); anything else is (False, False).
    """

    readable: bool
    writable: bool
    truncate: bool
    append: bool
    create: bool
    exists: bool


@dataclass(frozen=True)
class OpenPlan:
    """How to serve an open.

    cached: through an on-disk cache file (otherwise streamed to/from the remote).
    read/write: whether reads/writes on the handle are allowed; an uncached
    write handle refuses reads with EPERM, a cached one refuses the operation
    its access mode lacks with EBADF.
    truncate: the file starts empty (its old contents may be replaced).
    append: every write goes to the end of the file.
    """

    cached: bool
    read: bool
    write: bool
    truncate: bool
    append: bool


def plan_open(
    mode: CacheMode, req: OpenRequest, *, read_only: bool = False, in_cache: bool = False
) -> OpenPlan:
    """Decide how an open is served in `mode`, or raise OpenRefused.

    `in_cache`: the file already has a cache item (open, or on disk); such a
    file must be opened through the cache so every handle sees the same data.
    """
    if req.readable and not req.writable and req.truncate:
        # POSIX leaves O_RDONLY|O_TRUNC undefined; refuse rather than guess.
        raise OpenRefused(errno_codes.EINVAL, "O_TRUNC with O_RDONLY")
    if not req.readable and not req.writable:
        raise OpenRefused(errno_codes.EPERM, "can't tell the access mode from the open flags")
    wants_read = req.readable or req.append  # appending needs the existing data
    wants_write = req.writable or req.truncate or req.create

    if mode is CacheMode.OFF:
        cached = False
    elif mode is CacheMode.MINIMAL:
        cached = in_cache or (wants_read and wants_write)
    elif mode is CacheMode.WRITES:
        cached = in_cache or wants_write
    else:
        cached = True

    if not cached:
        if wants_write:
            if read_only:
                raise OpenRefused(errno_codes.EROFS, "open for writing: read-only file system")
            # An O_RDWR open streams write-only; a read on it fails with EPERM.
            return OpenPlan(
                cached=False,
                read=False,
                write=True,
                truncate=req.truncate or not req.exists,
                append=False,
            )
        return OpenPlan(cached=False, read=True, write=False, truncate=False, append=False)

    # rclone only checks the access mode here; refusing a create of a missing
    # file too keeps a read-only volume from growing empty files.
    if read_only and (req.writable or (req.create and not req.exists)):
        raise OpenRefused(errno_codes.EROFS, "open for writing: read-only file system")
    return OpenPlan(
        cached=True,
        read=req.readable,
        write=req.writable,
        truncate=req.writable and (req.truncate or (req.create and not req.exists)),
        append=req.writable and req.append,
    )


def can_seek(mode: CacheMode, plan: OpenPlan, no_seek: bool) -> bool:
    """Whether a handle may read or write at any offset.

    A cache file can always be seeked (--no-seek only concerns streamed reads, as
    in rclone); a streamed write can't; a streamed read can unless --no-seek.
    """
    if plan.cached:
        if mode is CacheMode.OFF:
            raise ValueError("a cached open plan in cache mode off")
        return True
    if plan.write:
        return False
    return not no_seek


@dataclass(frozen=True)
class CacheItemUsage:
    path: str
    present_bytes: int  # bytes actually on disk in the sparse file
    last_access: float
    open: bool
    dirty: bool


def choose_evictions(
    items: Sequence[CacheItemUsage],
    now: float,
    max_age: float,
    max_size: int,
    *,
    free_shortfall: int = 0,
) -> list[str]:
    """Paths of the cache items to remove, in the order to remove them.

    First every clean, closed item whose last access is at least `max_age` ago
    (rclone's cut-off is inclusive; a negative max_age disables this); then,
    while the bytes present in all items, open and dirty ones included, exceed
    `max_size`, the least recently used remaining clean, closed items. A
    `max_size` of 0 or below means no limit, as in rclone. Then, while
    `free_shortfall` bytes (what --vfs-cache-min-free-space lacks on the cache's
    disk) have not been freed, more of them, least recently used first.
    """
    paths = [item.path for item in items]
    if len(set(paths)) != len(paths):
        raise ValueError("cache items with the same path")
    candidates = sorted(
        (item for item in items if not item.open and not item.dirty),
        key=lambda item: (item.last_access, item.path),
    )
    chosen: list[str] = []
    kept: list[CacheItemUsage] = []
    for item in candidates:
        if max_age >= 0 and now - item.last_access >= max_age:
            chosen.append(item.path)
        else:
            kept.append(item)
    if max_size > 0:
        evicted = set(chosen)
        total = sum(item.present_bytes for item in items if item.path not in evicted)
        for item in kept:
            if total <= max_size:
                break
            chosen.append(item.path)
            total -= item.present_bytes
    if free_shortfall > 0:
        evicted = set(chosen)
        freed = sum(item.present_bytes for item in items if item.path in evicted)
        for item in kept:
            if freed >= free_shortfall:
                break
            if item.path not in evicted:
                chosen.append(item.path)
                freed += item.present_bytes
    return chosen


def upload_retry_delay(attempt: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait after failed upload number `attempt` (1 for the first):
    base, 2*base, 4*base... capped at `cap`, so 1, 2, 4, ..., 32, 60, 60 s by default.

    The seed page promises a 1 minute cap; rclone's code instead starts at
    --vfs-write-back and caps at 5 minutes, which with --vfs-write-back 0 retries
    in a tight loop. A fixed 1 s base avoids that.
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    if base < 0 or cap < 0:
        raise ValueError("delays can't be negative")
    # Beyond 2**63 any positive base is past any sensible cap; keep floats finite.
    return min(cap, base * 2.0 ** min(attempt - 1, 63))
