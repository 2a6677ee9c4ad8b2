"""rclone's alias remote: another remote (or a local path) under a new name; the
volume's path is taken inside the aliased remote's path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.storage.backend_options import check_backend_options
from adapters.storage.wrapped import build_wrapped, plain_subpath
from domain.volume import BackendSpec

if TYPE_CHECKING:
    from application.ports import RemoteStorage


def build_alias_storage(spec: BackendSpec) -> RemoteStorage:
    checked = check_backend_options("alias", spec.options)
    return build_wrapped(checked.text("remote"), plain_subpath(spec.root))
