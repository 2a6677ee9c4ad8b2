"""Storages that wrap other remotes (crypt, alias, union) build those from the
remote strings in their options. By then the volume's option parser has inlined
any config-file remote into a connection string (domain/wrapped_remotes.py), so
the string alone says what to build."""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.paths import normalise
from domain.volume import BackendSpec
from domain.volume_options import parse_volume_options

if TYPE_CHECKING:
    from application.ports import RemoteStorage


def wrapped_backend(remote: str, subpath: str = "") -> BackendSpec:
    """The backend a remote string names, its root extended by `subpath`."""
    backend = parse_volume_options({"remote": remote}).spec.backend
    extra = subpath.strip("/")
    if not extra:
        return backend
    root = backend.root.rstrip("/")
    joined = f"{root}/{extra}" if root or backend.root.startswith("/") else extra
    return BackendSpec(backend.type, joined, backend.options)


def build_wrapped(remote: str, subpath: str = "") -> RemoteStorage:
    from adapters.storage.factory import DefaultStorageFactory

    return DefaultStorageFactory().create(wrapped_backend(remote, subpath))


def plain_subpath(root: str) -> str:
    """A wrapper's own root (the volume's path in it) as a relative path."""
    return normalise(root.strip("/")) if root.strip("/") else ""
