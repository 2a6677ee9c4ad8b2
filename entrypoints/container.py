"""The composition root: one container wires the daemon; tests override providers.

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
from application.ports import MountManager, StorageFactory
from application.volume_service import (
    DEFAULT_CONNECT_TIMEOUT,
    NameValidator,
    OptionsParser,
    ParsedOptions,
    VolumeService,
)

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


def make_option_parser(defaults: Mapping[str, str], config_path: str | None) -> OptionsParser:
    from adapters.config import ConfigFileSource
    from domain.volume_options import parse_volume_options

    frozen = dict(defaults)
    source = ConfigFileSource(config_path) if config_path else None

    def parse(volume_opts: Mapping[str, str], /) -> ParsedOptions:
        # The config file is re-read when it changes, as rclone does.
        return parse_volume_options(volume_opts, frozen, source.current() if source else None)

    return parse


def make_name_validator() -> NameValidator:
    from domain.names import validate_volume_name

    return validate_volume_name


class Container(containers.DeclarativeContainer):
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
    option_parser = providers.Singleton(
        make_option_parser, defaults=config.daemon_defaults, config_path=config.config_path
    )
    name_validator = providers.Singleton(make_name_validator)

    volume_service = providers.Singleton(
        VolumeService,
        state_store=state_store,
        mount_manager=mount_manager,
        storage_factory=storage_factory,
        parse_options=option_parser,
        validate_name=name_validator,
        base_dir=config.base_dir,
        forget_state=config.forget_state,
        connect_timeout=config.connect_timeout,
    )

    # `.provider` hands the app a callable resolving volume_service at each call,
    # so overriding volume_service after the app exists still takes effect.
    app = providers.Singleton(create_app, get_service=volume_service.provider)
