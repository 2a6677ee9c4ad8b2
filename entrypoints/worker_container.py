"""A mount worker's composition root: from its job to the storage, the cache
store, the VFS, the mount frontend and the `MountWorker` that runs them.

`job` is the one dependency (`WorkerContainer(job=...)`); configuration key
`frontend` picks how the VFS is served ("fuse", the default). Tests override
`storage` (an in-memory remote) or any other provider
(`tests.fakes.containers`)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from dependency_injector import containers, providers
from loguru import logger

from adapters.cache import DiskCacheStore, cache_root
from adapters.config import load_rclone_config
from adapters.metrics.counting_storage import CountingStorage
from adapters.mounting.protocol import WorkerJob
from adapters.mounting.worker import (
    ConfigStamp,
    MountFrontend,
    MountWorker,
    stamp_config_file,
)
from adapters.mounting.worker_admin import ExtraStats
from application.ports import CacheStore, RemoteStorage, StorageFactory
from application.vfs import Vfs
from domain.filters import Filter, build_filter
from domain.modtime_cost import modtime_is_slow
from domain.options import ineffective_options
from domain.volume import VolumeSpec
from domain.volume_options import parse_volume_options


@dataclass(frozen=True)
class ParsedJob:
    spec: VolumeSpec
    config_stamp: ConfigStamp  # the config file as it was when `spec` was parsed


def parse_job(job: WorkerJob) -> ParsedJob:
    """The job's raw options parsed as the daemon parsed them; the config file is
    re-read, so a restarted worker sees its current remotes."""
    stamp = stamp_config_file(job.config_path)  # first: a later change shows as one
    config = load_rclone_config(job.config_path) if job.config_path else None
    parsed = ParsedJob(parse_volume_options(job.options, job.defaults, config).spec, stamp)
    # Options accepted with no effect here say so once, when the worker starts.
    for note in ineffective_options({**job.defaults, **job.options}):
        logger.info("{}", note)
    return parsed


def make_storage_factory() -> StorageFactory:
    # Imported here: the fork server preloads only the backends its jobs need.
    from adapters.storage.factory import DefaultStorageFactory

    return DefaultStorageFactory()


def make_storage(factory: StorageFactory, spec: VolumeSpec, job: WorkerJob) -> RemoteStorage:
    storage = factory.create(spec.backend)
    if spec.vfs.use_server_modtime and hasattr(storage, "use_server_modtime"):
        storage.use_server_modtime = True  # backends with a server time of their own (S3)
    keep_journal = getattr(storage, "keep_partials_journal", None)
    if callable(keep_journal):
        # The temporary files of interrupted uploads (issue 12): recorded in the
        # volume's cache, so the next worker removes what a killed one left.
        keep_journal(os.path.join(cache_root(job.cache_dir, job.name), "partials"))
    return storage


def _read_rules_file(path: str) -> list[str]:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return f.read().splitlines()


def make_path_filter(spec: VolumeSpec) -> Filter:
    """The volume's filter flags, with their rules files read now (as rclone
    reads them once at start) and ages measured from now."""
    return build_filter(spec.vfs.filters, _read_rules_file, time.time())


def make_cache_store(job: WorkerJob) -> CacheStore:
    # Damaged items are kept outside the volume's cache: removing the volume, which
    # deletes its cache, must not take the only copy of a write with it.
    aside = os.path.join(job.cache_dir, "corrupt", job.name)
    return DiskCacheStore(cache_root(job.cache_dir, job.name), aside_dir=aside)


def make_vfs(
    storage: RemoteStorage, spec: VolumeSpec, cache_store: CacheStore, path_filter: Filter
) -> Vfs:
    return Vfs(
        storage,
        spec.vfs,
        cache_store=cache_store,
        # With --use-server-modtime the listing's time is the file's time: cheap.
        slow_modtime=modtime_is_slow(spec.backend.type) and not spec.vfs.use_server_modtime,
        path_filter=path_filter,
    )


def make_extra_stats(storage: CountingStorage) -> ExtraStats:
    """What the worker's `stats` reply adds to the cache's: the bytes moved to and
    from the remote, and the FUSE operations served."""
    from adapters.fuse.op_stats import FUSE_OPERATIONS

    def extra_stats() -> dict[str, Any]:
        return {"remote_traffic": asdict(storage.traffic), "fuse": FUSE_OPERATIONS.snapshot()}

    return extra_stats


def fuse_frontend() -> MountFrontend:
    from adapters.fuse import run_fuse

    return run_fuse


class WorkerContainer(containers.DeclarativeContainer):
    config = providers.Configuration(default={"frontend": "fuse"})
    job = providers.Dependency(instance_of=WorkerJob)

    parsed_job = providers.Singleton(parse_job, job)
    spec = parsed_job.provided.spec
    path_filter = providers.Singleton(make_path_filter, spec)
    storage_factory = providers.Singleton(make_storage_factory)
    storage = providers.Singleton(make_storage, storage_factory, spec, job)
    # What the VFS and the worker use: `storage` with its bytes counted for the stats.
    counted_storage = providers.Singleton(CountingStorage, storage)
    cache_store = providers.Singleton(make_cache_store, job)
    vfs = providers.Singleton(make_vfs, counted_storage, spec, cache_store, path_filter)
    frontend = providers.Selector(config.frontend, fuse=providers.Singleton(fuse_frontend))

    # Called with `report=`: where the first mount's readiness line goes.
    worker = providers.Factory(
        MountWorker,
        job=job,
        spec=spec,
        storage=counted_storage,
        vfs=vfs,
        frontend=frontend,
        config_stamp=parsed_job.provided.config_stamp,
        extra_stats=providers.Callable(make_extra_stats, counted_storage),
    )
