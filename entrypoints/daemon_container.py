"""The daemon's composition root (the worker's is `entrypoints.worker_container`);
tests override its providers with fakes (`tests.fakes.containers`).

Configuration keys (set with `container.config.from_dict(...)`):
base_dir, cache_dir, daemon_defaults (raw mount/VFS flag values, the defaults of
every volume's options), log_level ("WARNING"/"INFO"/"DEBUG", passed to workers),
log_file, forget_state, connect_timeout (seconds Create waits for a remote);
for operating the daemon (`cloudvol status`, `cloudvol rc`, metrics): admin_socket,
socket_description, metrics_addr, version.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers
from fastapi import FastAPI

from adapters.admin.app import create_admin_app
from adapters.http.app import create_app
from adapters.state.json_file import STATE_FILE_NAME, JsonStateFile
from application.operations import DaemonInfo, Operations, WorkerAdmin
from application.ports import ConfigSource, MountManager, StorageFactory
from application.volume_service import DEFAULT_CONNECT_TIMEOUT, VolumeService

if TYPE_CHECKING:
    from adapters.metrics.server import DaemonMetrics
    from adapters.mounting.worker_watch import WorkerWatch

# The adapters below are imported when first provided, not at import time, so that
# `cloudvol version`, `--help` and tests that override these providers do not load
# the storage and FUSE stacks.


def make_storage_factory() -> StorageFactory:
    from adapters.storage.factory import DefaultStorageFactory

    return DefaultStorageFactory()


def make_mount_manager(
    *,
    base_dir: str,
    cache_dir: str,
    daemon_defaults: Mapping[str, str],
    log_level: str,
    log_file: str | None,
    config_path: str | None,
) -> MountManager:
    from adapters.mounting.manager import WorkerMountManager

    return WorkerMountManager(
        base_dir=base_dir,
        cache_dir=cache_dir,
        daemon_defaults=dict(daemon_defaults),
        log_level=log_level,
        log_file=log_file,
        config_path=config_path,
        standby=True,  # a volume's worker starts at Create, ready for the Mount
    )


def make_config_source(config_path: str | None) -> ConfigSource | None:
    from adapters.config import ConfigFileSource

    return ConfigFileSource(config_path) if config_path else None


def make_worker_admin(cache_dir: str) -> WorkerAdmin:
    from adapters.mounting.control import WorkerAdminClient

    return WorkerAdminClient(cache_dir)


def make_worker_watch(cache_dir: str) -> WorkerWatch:
    from adapters.mounting.worker_watch import WorkerWatch

    return WorkerWatch(cache_dir)


def make_daemon_info(
    *,
    version: str,
    cache_dir: str,
    admin_socket: str | None,
    socket_description: str,
    config_path: str | None,
    metrics_addr: str | None,
) -> DaemonInfo:
    from adapters.admin.server import default_admin_socket

    return DaemonInfo(
        version=version,
        pid=os.getpid(),
        started_at=time.time(),
        socket=socket_description,
        admin_socket=admin_socket or default_admin_socket(cache_dir),
        state_file=os.path.join(cache_dir, STATE_FILE_NAME),
        config_file=config_path,
        cache_dir=cache_dir,
        metrics_addr=metrics_addr or None,
    )


def make_daemon_metrics(operations: Operations, watch: WorkerWatch) -> DaemonMetrics:
    from adapters.metrics.server import DaemonMetrics

    async def snapshot() -> dict[str, Any]:
        await watch.poll()  # a worker started since the last poll counts in this scrape
        return await operations.status()

    return DaemonMetrics(snapshot, lambda: watch.counts)


def make_plugin_app(get_service: Callable[[], VolumeService], metrics: DaemonMetrics) -> FastAPI:
    app = create_app(get_service=get_service)
    metrics.instrument(app)  # the API's calls by endpoint, with their latency
    return app


class DaemonContainer(containers.DeclarativeContainer):
    config = providers.Configuration(
        default={
            "daemon_defaults": {},
            "log_level": "WARNING",
            "log_file": None,
            "config_path": None,
            "forget_state": False,
            "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
            "admin_socket": None,
            "socket_description": "",
            "metrics_addr": None,
            "version": "unknown",
        }
    )

    state_store = providers.Singleton(
        JsonStateFile,
        path=providers.Callable(os.path.join, config.cache_dir, STATE_FILE_NAME),
    )
    storage_factory = providers.Singleton(make_storage_factory)
    mount_manager = providers.Singleton(
        make_mount_manager,
        base_dir=config.base_dir,
        cache_dir=config.cache_dir,
        daemon_defaults=config.daemon_defaults,
        log_level=config.log_level,
        log_file=config.log_file,
        config_path=config.config_path,
    )
    config_source = providers.Singleton(make_config_source, config_path=config.config_path)

    volume_service = providers.Singleton(
        VolumeService,
        state_store=state_store,
        mount_manager=mount_manager,
        storage_factory=storage_factory,
        base_dir=config.base_dir,
        daemon_defaults=config.daemon_defaults,
        config_source=config_source,
        forget_state=config.forget_state,
        connect_timeout=config.connect_timeout,
    )

    # Operating the daemon: the admin API's use cases, over the workers' sockets.
    worker_admin = providers.Singleton(make_worker_admin, cache_dir=config.cache_dir)
    daemon_info = providers.Singleton(
        make_daemon_info,
        version=config.version,
        cache_dir=config.cache_dir,
        admin_socket=config.admin_socket,
        socket_description=config.socket_description,
        config_path=config.config_path,
        metrics_addr=config.metrics_addr,
    )
    operations = providers.Singleton(
        Operations, service=volume_service, workers=worker_admin, info=daemon_info
    )
    admin_app = providers.Singleton(create_admin_app, get_operations=operations.provider)
    worker_watch = providers.Singleton(make_worker_watch, cache_dir=config.cache_dir)
    metrics = providers.Singleton(make_daemon_metrics, operations, worker_watch)

    # `.provider` hands the app a callable resolving volume_service at each call,
    # so overriding volume_service after the app exists still takes effect.
    app = providers.Singleton(make_plugin_app, get_service=volume_service.provider, metrics=metrics)
