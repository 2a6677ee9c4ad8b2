"""Checks shared by the storage adapters on the relative paths they are given.

`domain.paths.normalise` already produced these paths; the adapters check again
because a path that escaped the root here would touch data outside the volume.
"""

from __future__ import annotations

import errno


def components(path: str) -> list[str]:
    """The components of a normalised relative path ("" -> []), refusing ".."."""
    if path.startswith("/"):
        raise PermissionError(errno.EACCES, "absolute path refused", path)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for part in parts:
        if part == ".." or "\0" in part:
            raise PermissionError(errno.EACCES, "path leaves the volume root", path)
    return parts
