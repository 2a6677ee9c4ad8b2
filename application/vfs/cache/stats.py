"""Read-only statistics of a VFS file cache, for `cloudvol status`, `rc vfs/stats`,
`rc vfs/queue` and the Prometheus metrics. The parts of the cache keep these
counters as they work; `VfsCache.stats()` puts a snapshot together. Nothing here
changes what the cache does."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class UploadCounters:
    """Totals since the worker started."""

    completed: int = 0  # files uploaded
    bytes_uploaded: int = 0
    failed: int = 0  # attempts that raised (each is retried)
    retried: int = 0  # attempts started after a failure
    last_error: str | None = None
    last_error_at: float | None = None  # wall-clock time (seconds since the epoch)

    def record_failure(self, path: str, error: BaseException, at: float) -> None:
        self.failed += 1
        self.last_error = f"{path}: {error}"
        self.last_error_at = at


@dataclass
class ReadCounters:
    """Reads through the cache: served from the cached bytes (hit), or waiting for
    bytes fetched from the remote (miss)."""

    hits: int = 0
    misses: int = 0


@dataclass
class RemoteTraffic:
    """Bytes moved to and from the remote (counted by the worker's storage)."""

    bytes_read: int = 0
    bytes_written: int = 0


@dataclass(frozen=True)
class QueuedUpload:
    """One entry of the write-back queue, as rclone's `vfs/queue` shows it."""

    id: int
    path: str
    size: int
    # waiting: in its write-back delay; queued: due, waiting for a transfer slot;
    # uploading: moving bytes; retrying: waiting after a failed attempt.
    state: str
    age: float  # seconds since it was scheduled
    expiry: float  # seconds until it is due (0 once due)
    attempts: int
    bytes_sent: int
    rate: float  # bytes per second since this attempt started sending


@dataclass(frozen=True)
class CacheStats:
    items: int
    dirty_files: int
    dirty_bytes: int
    used_bytes: int  # bytes really present in the sparse data files
    limit_bytes: int | None  # None: no limit (--vfs-cache-max-size off)
    queue: tuple[QueuedUpload, ...] = ()
    uploads: UploadCounters = field(default_factory=UploadCounters)
    reads: ReadCounters = field(default_factory=ReadCounters)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EMPTY_STATS = CacheStats(items=0, dirty_files=0, dirty_bytes=0, used_bytes=0, limit_bytes=None)
