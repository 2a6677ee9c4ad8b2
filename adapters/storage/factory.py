"""Builds the `RemoteStorage` for a backend type.

Types are looked up in a registry of builders (local, sftp, s3 by default); a type
without a builder that names an installed fsspec protocol (`memory`, `http`...)
gets the generic fsspec storage. A new backend is one `register()` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from adapters.storage.fsspec_storage import build_fsspec_storage, fsspec_protocols
from adapters.storage.local import LocalStorage
from adapters.storage.s3 import build_s3_storage
from adapters.storage.sftp import SftpStorage
from application.ports import RemoteStorage
from domain.errors import OptionError
from domain.volume import BackendSpec

StorageBuilder = Callable[[BackendSpec], RemoteStorage]

DEFAULT_BUILDERS: Mapping[str, StorageBuilder] = {
    "local": LocalStorage,
    "s3": build_s3_storage,
    "sftp": SftpStorage,
}


class DefaultStorageFactory:
    """`StorageFactory` dispatching on `BackendSpec.type`; builders never connect.

    `fsspec_fallback=False` limits it to the registered builders (tests).
    """

    def __init__(
        self, builders: Mapping[str, StorageBuilder] | None = None, *, fsspec_fallback: bool = True
    ) -> None:
        self._builders: dict[str, StorageBuilder] = dict(
            DEFAULT_BUILDERS if builders is None else builders
        )
        self._fsspec_fallback = fsspec_fallback

    def register(self, type_name: str, builder: StorageBuilder) -> None:
        """Add (or replace) the builder for `type_name`."""
        self._builders[type_name] = builder

    @property
    def types(self) -> list[str]:
        """Every type this factory can build (fsspec protocols: those installed)."""
        extra = fsspec_protocols() if self._fsspec_fallback else ()
        return sorted({*self._builders, *extra})

    def create(self, backend: BackendSpec) -> RemoteStorage:
        builder = self._builders.get(backend.type)
        if builder is not None:
            return builder(backend)
        if self._fsspec_fallback and backend.type in fsspec_protocols():
            return build_fsspec_storage(backend)
        raise OptionError(
            f'unknown backend type "{backend.type}" (available: {", ".join(self.types)})'
        )
