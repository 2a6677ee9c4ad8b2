"""Mount workers: one FUSE process per volume, spawned and supervised by the daemon."""

from adapters.mounting.manager import WorkerMountManager

__all__ = ["WorkerMountManager"]
