"""Builds the `RemoteStorage` for a backend type.

Types are looked up in a registry of builders (local, sftp, s3 by default); a type
without a builder that names an installed fsspec protocol (`memory`, `http`...)
gets the generic fsspec storage. A new backend is one `register()` call.

The default builders import their backend's module on first use only: a mount
worker serving a local or SFTP volume never pays for importing fsspec, s3fs and
botocore, nor a local one for asyncssh (a few hundred ms at every Mount).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from domain.errors import OptionError

if TYPE_CHECKING:
    from application.ports import RemoteStorage
    from domain.volume import BackendSpec

StorageBuilder = Callable[["BackendSpec"], "RemoteStorage"]


class _LazyBuilder:
    """A builder importing `module` only when it first builds a storage."""

    def __init__(self, module: str, attr: str) -> None:
        self.module, self.attr = module, attr

    def load(self) -> StorageBuilder:
        builder: StorageBuilder = getattr(importlib.import_module(self.module), self.attr)
        return builder

    def __call__(self, backend: BackendSpec) -> RemoteStorage:
        return self.load()(backend)

    def __repr__(self) -> str:
        return f"<{self.attr} from {self.module}>"


DEFAULT_BUILDERS: Mapping[str, StorageBuilder] = {
    "local": _LazyBuilder("adapters.storage.local", "LocalStorage"),
    "s3": _LazyBuilder("adapters.storage.s3", "build_s3_storage"),
    "sftp": _LazyBuilder("adapters.storage.sftp", "SftpStorage"),
    # issue 13: wrappers of other remotes, and remotes over fsspec filesystems
    "crypt": _LazyBuilder("adapters.storage.crypt.build", "build_crypt_storage"),
    "alias": _LazyBuilder("adapters.storage.alias", "build_alias_storage"),
    "union": _LazyBuilder("adapters.storage.union", "build_union_storage"),
    "webdav": _LazyBuilder("adapters.storage.fsspec_remotes", "build_webdav_storage"),
    "ftp": _LazyBuilder("adapters.storage.fsspec_remotes", "build_ftp_storage"),
    "smb": _LazyBuilder("adapters.storage.fsspec_remotes", "build_smb_storage"),
    "azureblob": _LazyBuilder("adapters.storage.fsspec_remotes", "build_azureblob_storage"),
    "http": _LazyBuilder("adapters.storage.fsspec_remotes", "build_http_storage"),
}


def _fsspec_protocols() -> tuple[str, ...]:
    from adapters.storage.fsspec_protocols import fsspec_protocols

    return fsspec_protocols()


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

    def preload(self, type_name: str) -> None:
        """Import what building a `type_name` storage needs, ahead of time (the fork
        server does it, so that the workers it forks share the imports). Unknown types and
        backends whose library is missing are left for `create` to report."""
        builder = self._builders.get(type_name)
        if isinstance(builder, _LazyBuilder):
            with contextlib.suppress(ImportError):
                builder.load()

    @property
    def types(self) -> list[str]:
        """Every type this factory can build (fsspec protocols: those installed)."""
        extra = _fsspec_protocols() if self._fsspec_fallback else ()
        return sorted({*self._builders, *extra})

    def create(self, backend: BackendSpec) -> RemoteStorage:
        builder = self._builders.get(backend.type)
        if builder is not None:
            return builder(backend)
        if self._fsspec_fallback and backend.type in _fsspec_protocols():
            from adapters.storage.fsspec_storage import build_fsspec_storage

            return build_fsspec_storage(backend)
        raise OptionError(
            f'unknown backend type "{backend.type}" (available: {", ".join(self.types)})'
        )
