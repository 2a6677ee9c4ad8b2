"""Symbolic links stored as plain files, rclone's `--links` convention.

A link `name` is kept on the remote as a regular file `name.rclonelink` whose
whole content is the link's target (UTF-8, no trailing newline). rclone 1.60's
`copy --links` and 1.75's `mount --links` read and write the same files, so a
volume's links survive a copy either way on every backend.
"""

from __future__ import annotations

import dataclasses

from domain.remote_entry import RemoteEntry

LINK_SUFFIX = ".rclonelink"
# Linux's own limit on a symlink's target (PATH_MAX, the terminating NUL included).
TARGET_MAX = 4095


def link_name(remote_name: str) -> str | None:
    """The link a remote file name stands for, or None if it is no link file."""
    if remote_name.endswith(LINK_SUFFIX) and len(remote_name) > len(LINK_SUFFIX):
        return remote_name[: -len(LINK_SUFFIX)]
    return None


def link_file_name(name: str) -> str:
    """The remote file name that stores the link `name`."""
    return name + LINK_SUFFIX


def encode_target(target: str) -> bytes:
    """The content of a link file; names that were undecodable bytes stay bytes."""
    return target.encode("utf-8", "surrogateescape")


def decode_target(content: bytes) -> str:
    return content.decode("utf-8", "surrogateescape")


def show_links(entries: list[RemoteEntry]) -> list[RemoteEntry]:
    """A listing as `--links` shows it: each `name.rclonelink` file becomes the
    link `name`. A link whose name a real file or directory also has is hidden
    (the real one wins, as a local disk cannot hold both)."""
    real = {e.name for e in entries if e.is_dir or link_name(e.name) is None}
    shown: list[RemoteEntry] = []
    for entry in entries:
        name = None if entry.is_dir else link_name(entry.name)
        if name is None:
            shown.append(entry)
        elif name not in real:
            shown.append(dataclasses.replace(entry, name=name, is_link=True))
    return shown
