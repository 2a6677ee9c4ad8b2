"""Each process's container wired with fakes: the one place tests replace providers."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.mounting.protocol import WorkerJob
from entrypoints.daemon_container import DaemonContainer
from entrypoints.worker_container import WorkerContainer
from tests.fakes.daemon import FakeMountManager, FakeStateStore
from tests.fakes.storage import MemoryStorage, MemoryStorageFactory, MemoryTree


@dataclass
class DaemonFakes:
    store: FakeStateStore = field(default_factory=FakeStateStore)
    mounts: FakeMountManager = field(default_factory=FakeMountManager)
    storage: object = field(default_factory=MemoryStorageFactory)  # any StorageFactory


def use_daemon_fakes(container: DaemonContainer, fakes: DaemonFakes | None = None) -> DaemonFakes:
    """Override the daemon's I/O ports (state file, workers, remotes) with `fakes`;
    the config file is left out unless the container's config names one."""
    fakes = fakes if fakes is not None else DaemonFakes()
    container.state_store.override(fakes.store)
    container.mount_manager.override(fakes.mounts)
    container.storage_factory.override(fakes.storage)
    return fakes


def memory_worker_container(job: WorkerJob, tree: MemoryTree) -> WorkerContainer:
    """A worker for `job` whose remote is `tree` in memory, whatever backend the
    job names; the cache, VFS and frontend are the real ones."""
    container = WorkerContainer(job=job)
    container.storage.override(MemoryStorage(tree))
    return container
