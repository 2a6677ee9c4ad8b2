"""Builds the `RemoteStorage` for a backend type.

Types are looked up in a registry of builders, so a new backend (fsspec, s3...)
is one `register()` call, made by the composition root or a default below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from adapters.storage.local import LocalStorage
from adapters.storage.sftp import SftpStorage
from application.ports import RemoteStorage
from domain.errors import OptionError
from domain.volume import BackendSpec

StorageBuilder = Callable[[BackendSpec], RemoteStorage]

DEFAULT_BUILDERS: Mapping[str, StorageBuilder] = {
    "local": LocalStorage,
    "sftp": SftpStorage,
}


class DefaultStorageFactory:
    """`StorageFactory` dispatching on `BackendSpec.type`; builders never connect."""

    def __init__(self, builders: Mapping[str, StorageBuilder] | None = None) -> None:
        self._builders: dict[str, StorageBuilder] = dict(
            DEFAULT_BUILDERS if builders is None else builders
        )

    def register(self, type_name: str, builder: StorageBuilder) -> None:
        """Add (or replace) the builder for `type_name`."""
        self._builders[type_name] = builder

    @property
    def types(self) -> list[str]:
        return sorted(self._builders)

    def create(self, backend: BackendSpec) -> RemoteStorage:
        builder = self._builders.get(backend.type)
        if builder is None:
            raise OptionError(
                f"unknown backend type {backend.type!r} (available: {', '.join(self.types)})"
            )
        return builder(backend)
