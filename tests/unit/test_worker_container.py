"""The worker's composition root, built from a job without starting anything."""

from __future__ import annotations

from pathlib import Path

from adapters.cache import DiskCacheStore, cache_root
from adapters.fuse import run_fuse
from adapters.mounting.protocol import WorkerJob
from adapters.mounting.worker import MountWorker
from domain.modtime_cost import modtime_is_slow
from entrypoints.worker_container import WorkerContainer
from tests.fakes.containers import memory_worker_container
from tests.fakes.storage import MemoryStorage, MemoryTree


def _job(tmp_path: Path, **options: str) -> WorkerJob:
    return WorkerJob(
        name="vol",
        mountpoint=str(tmp_path / "mnt"),
        options={"type": "local", "path": "/srv", **options},
        defaults={"dir-cache-time": "7s"},
        cache_dir=str(tmp_path / "cache"),
        control_socket=str(tmp_path / "vol.sock"),
    )


def test_the_job_is_parsed_over_the_daemon_defaults(tmp_path: Path) -> None:
    spec = WorkerContainer(job=_job(tmp_path, **{"read-only": "true"})).spec()
    assert (spec.backend.type, spec.backend.root) == ("local", "/srv")
    assert spec.vfs.read_only and spec.vfs.dir_cache_time == 7.0


def test_the_cache_lives_where_the_daemon_looks_for_it(tmp_path: Path) -> None:
    store = WorkerContainer(job=_job(tmp_path)).cache_store()
    assert isinstance(store, DiskCacheStore)
    assert store.root == cache_root(str(tmp_path / "cache"), "vol")


def test_fuse_is_the_default_frontend(tmp_path: Path) -> None:
    assert WorkerContainer(job=_job(tmp_path)).frontend() is run_fuse


def test_an_overridden_storage_is_the_one_the_worker_gets(tmp_path: Path) -> None:
    tree = MemoryTree()
    container = memory_worker_container(_job(tmp_path), tree)
    worker = container.worker(report=lambda line: None)
    assert isinstance(worker, MountWorker)
    storage = container.storage()
    assert isinstance(storage, MemoryStorage) and storage.tree is tree
    assert container.vfs() is container.vfs()  # one VFS per worker process


def test_backends_that_pay_for_modification_times() -> None:
    assert modtime_is_slow("s3") and not modtime_is_slow("sftp")
