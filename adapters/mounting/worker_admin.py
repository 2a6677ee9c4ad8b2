"""The worker's answers to the admin requests on its control socket: `stats`
(what `cloudvol status`, `rc vfs/stats`, `rc vfs/queue` and the metrics show),
`expire` (rclone's `vfs/queue-set-expiry`), `refresh` (`vfs/refresh`) and
`forget-path` (`vfs/forget file=`/`dir=`). Kept apart from `worker`, which only
dispatches to them. Also the progress lines a draining worker logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from loguru import logger

from domain.errors import MountFailed
from domain.remote_display import describe_remote

if TYPE_CHECKING:
    from adapters.mounting.worker import MountWorker

ADMIN_OPS = ("stats", "expire", "refresh", "forget-path")
MAX_QUEUE_SHOWN = 100  # uploads listed in one stats reply (the first ones queued)
PROGRESS_INTERVAL = 5.0  # seconds between "left to upload" lines while draining

# What the container adds to a worker's stats: the FUSE operations and the bytes
# moved to and from the remote (the adapters that count them are not this one's).
ExtraStats = Callable[[], dict[str, Any]]


async def admin_reply(worker: MountWorker, op: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The reply fields of one admin request; raises MountFailed for a refusal."""
    vfs = worker.vfs
    if op == "stats":
        return {"stats": worker_stats(worker)}
    if op == "expire":
        upload_id, expiry = fields.get("id"), fields.get("expiry", 0)
        if isinstance(upload_id, bool) or not isinstance(upload_id, int):
            raise MountFailed("expire needs id=N, the number of a queued upload")
        if isinstance(expiry, bool) or not isinstance(expiry, int | float) or expiry < 0:
            raise MountFailed("expire needs expiry=SECONDS, 0 or more")
        if not vfs.cache.expire_upload(upload_id, float(expiry)):
            raise MountFailed(f"no queued upload with id {upload_id} (one sending is not changed)")
        return {"expired": upload_id}
    if op == "refresh":
        path = _path_field(fields, "dir", default="")
        try:
            listed = await vfs.refresh(path, recursive=fields.get("recursive") is True)
        except OSError as e:
            raise MountFailed(f"dir {path or '/'!r}: {e.strerror or e}") from None
        return {"refreshed": path or "/", "listings": listed}
    if op == "forget-path":
        path = _path_field(fields, "path", default=None)
        return {"forgotten": path, "found": vfs.forget_path(path)}
    raise MountFailed(f"unknown admin request {op!r}")


def _path_field(fields: dict[str, Any], key: str, default: str | None) -> str:
    value = fields.get(key, default)
    if not isinstance(value, str):
        raise MountFailed(f"{key} must be a path")
    return value


def worker_stats(worker: MountWorker) -> dict[str, Any]:
    spec = worker.spec
    cache = worker.vfs.cache.stats() if worker.vfs_started else None
    cache_dict = cache.to_dict() if cache is not None else None
    if cache_dict is not None and len(cache_dict["queue"]) > MAX_QUEUE_SHOWN:
        # A control reply is one line of at most MAX_LINE bytes.
        cache_dict["queue_not_shown"] = len(cache_dict["queue"]) - MAX_QUEUE_SHOWN
        cache_dict["queue"] = cache_dict["queue"][:MAX_QUEUE_SHOWN]
    return {
        "volume": worker.job.name,
        "pid": worker.pid,
        "mountpoint": worker.job.mountpoint,
        "state": worker.state,
        "started_at": worker.started_at,
        "remote": describe_remote(spec.backend),
        "cache_mode": spec.vfs.cache_mode.value,
        "cache": cache_dict,
        **worker.extra_stats(),
    }


async def report_drain_progress(worker: MountWorker, interval: float = PROGRESS_INTERVAL) -> None:
    """While the worker drains: an INFO line every `interval` seconds with the
    files and bytes left to upload. Runs until cancelled."""
    while True:
        await anyio.sleep(interval)
        stats = worker.vfs.cache.stats()
        sending = sum(q.bytes_sent for q in stats.queue)
        logger.info(
            "volume {}: {} file(s), {} byte(s) left to upload ({} being sent)",
            worker.job.name,
            stats.dirty_files,
            max(0, stats.dirty_bytes - sending),
            sum(1 for q in stats.queue if q.state == "uploading"),
        )
