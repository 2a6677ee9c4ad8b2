"""The daemon's composition root (the worker's is `entrypoints.worker_container`);
tests override its providers with fakes (`tests.fakes.containers`).

Configuration keys (set with `container.config.from_dict(...)`):
base_dir, cache_dir, daemon_defaults (raw mount/VFS flag values, the defaults of
every volume's options), log_level ("WARNING"/"INFO"/"DEBUG", passed to workers),
log_file, forget_state, connect_timeout (seconds Create waits for a remote).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dependency_injector import containers, providers

from adapters.http.app import create_app
from adapters.state.json_file import STATE_FILE_NAME, JsonStateFile
from application.ports import ConfigSource, MountManager, StorageFactory
from application.volume_service import DEFAULT_CONNECT_TIMEOUT, VolumeService

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


class DaemonContainer(containers.DeclarativeContainer):
    config = providers.Configuration(
        default={
            "daemon_defaults": {},
            "log_level": "WARNING",
            "log_file": None,
            "config_path": None,
            "forget_state": False,
            "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
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

    # `.provider` hands the app a callable resolving volume_service at each call,
    # so overriding volume_service after the app exists still takes effect.
    app = providers.Singleton(create_app, get_service=volume_service.provider)
