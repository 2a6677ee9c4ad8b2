"""Paths inside a volume.

Every path handed to a `RemoteStorage` is relative to the volume's root, in POSIX
form, with no leading slash, no empty, `.` or `..` components; the root itself is
"". Normalising here, once, is what keeps a name from escaping the base directory.
"""

from domain.errors import CloudvolError


class UnsafePath(CloudvolError):
    pass


def normalise(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafePath(f"path {path!r} leaves the volume")
        if "\0" in part:
            raise UnsafePath(f"path {path!r} holds a NUL byte")
        parts.append(part)
    return "/".join(parts)


def join(parent: str, name: str) -> str:
    """Join a normalised parent and one name component."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise UnsafePath(f"bad name component {name!r}")
    return f"{parent}/{name}" if parent else name


def parent_of(path: str) -> str:
    return path.rpartition("/")[0]


def basename(path: str) -> str:
    return path.rpartition("/")[2]
