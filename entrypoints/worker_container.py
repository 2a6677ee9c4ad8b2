"""A mount worker's composition root: from its job to the storage, the cache
store, the VFS, the mount frontend and the `MountWorker` that runs them.

`job` is the one dependency (`WorkerContainer(job=...)`); configuration key
`frontend` picks how the VFS is served ("fuse", the default). Tests override
`storage` (an in-memory remote) or any other provider
(`tests.fakes.containers`)."""

from __future__ import annotations

from dependency_injector import containers, providers

from adapters.cache import DiskCacheStore, cache_root
from adapters.config import load_rclone_config
from adapters.mounting.protocol import WorkerJob
from adapters.mounting.worker import MountFrontend, MountWorker
from application.ports import CacheStore, RemoteStorage, StorageFactory
from application.vfs import Vfs
from domain.modtime_cost import modtime_is_slow
from domain.volume import VolumeSpec
from domain.volume_options import parse_volume_options


def job_spec(job: WorkerJob) -> VolumeSpec:
    """The job's raw options parsed as the daemon parsed them; the config file is
    re-read, so a restarted worker sees its current remotes."""
    config = load_rclone_config(job.config_path) if job.config_path else None
    return parse_volume_options(job.options, job.defaults, config).spec


def make_storage_factory() -> StorageFactory:
    # Imported here: a spare worker preloads only the backends it will need.
    from adapters.storage.factory import DefaultStorageFactory

    return DefaultStorageFactory()


def make_storage(factory: StorageFactory, spec: VolumeSpec) -> RemoteStorage:
    return factory.create(spec.backend)


def make_cache_store(job: WorkerJob) -> CacheStore:
    return DiskCacheStore(cache_root(job.cache_dir, job.name))


def make_vfs(storage: RemoteStorage, spec: VolumeSpec, cache_store: CacheStore) -> Vfs:
    return Vfs(
        storage,
        spec.vfs,
        cache_store=cache_store,
        slow_modtime=modtime_is_slow(spec.backend.type),
    )


def fuse_frontend() -> MountFrontend:
    from adapters.fuse import run_fuse

    return run_fuse


class WorkerContainer(containers.DeclarativeContainer):
    config = providers.Configuration(default={"frontend": "fuse"})
    job = providers.Dependency(instance_of=WorkerJob)

    spec = providers.Singleton(job_spec, job)
    storage_factory = providers.Singleton(make_storage_factory)
    storage = providers.Singleton(make_storage, storage_factory, spec)
    cache_store = providers.Singleton(make_cache_store, job)
    vfs = providers.Singleton(make_vfs, storage, spec, cache_store)
    frontend = providers.Selector(config.frontend, fuse=providers.Singleton(fuse_frontend))

    # Called with `report=`: where the first mount's readiness line goes.
    worker = providers.Factory(
        MountWorker,
        job=job,
        spec=spec,
        storage=storage,
        vfs=vfs,
        frontend=frontend,
    )
