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


def test_options_without_effect_are_logged_once_at_info(tmp_path: Path) -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["level"].name + " " + m), level="INFO")
    try:
        WorkerContainer(job=_job(tmp_path, **{"poll-interval": "10s", "volname": "v"})).spec()
    finally:
        logger.remove(sink)
    notes = [line for line in lines if "accepted with no effect" in line]
    assert len(notes) == 2
    assert all(line.startswith("INFO ") for line in notes)
    assert any("SFTP and S3 cannot report changes" in line for line in notes)


def test_filter_rules_files_are_read_when_the_worker_starts(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.write_text("- *.bak\n")
    flt = WorkerContainer(job=_job(tmp_path, **{"filter-from": str(rules)})).path_filter()
    assert flt.active
    assert not flt.include_file("x.bak", 1, 0.0) and flt.include_file("x.txt", 1, 0.0)


def test_use_server_modtime_makes_modification_times_cheap(tmp_path: Path) -> None:
    from domain.volume import BackendSpec

    job = _job(tmp_path, **{"use-server-modtime": "true"})
    spec = WorkerContainer(job=job).spec()
    assert spec.vfs.use_server_modtime
    s3 = BackendSpec("s3", "bucket", {"provider": "Other", "endpoint": "http://127.0.0.1:1"})
    from dataclasses import replace

    from entrypoints.worker_container import make_storage, make_storage_factory

    storage = make_storage(make_storage_factory(), replace(spec, backend=s3), job)
    assert getattr(storage, "use_server_modtime", None) is True
