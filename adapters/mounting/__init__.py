"""Mount workers: one FUSE process per volume, spawned and supervised by the daemon.

`WorkerMountManager` is imported on first use: the worker process imports this
package too, and has no use for the daemon's side of it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.mounting.manager import WorkerMountManager

__all__ = ["WorkerMountManager"]


def __getattr__(name: str) -> Any:
    if name == "WorkerMountManager":
        from adapters.mounting.manager import WorkerMountManager

        return WorkerMountManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
