"""Modes, owners and times over SFTP v3 (SETSTAT), and hard links over
OpenSSH's hardlink@openssh.com extension.

SFTP v3 sets uid and gid together, and atime and mtime together, as unsigned
32-bit seconds: a change of one of a pair reads the other first, and a time
before 1970 or after 2106 is refused with EOVERFLOW naming the limit.
"""

from __future__ import annotations

import errno
import re

import asyncssh

from domain.metadata import FileMetadata

_U32_MAX = (1 << 32) - 1
# `ls -l` style long names: "-rw-r--r--    2 user group ..." (OpenSSH, and most servers).
_LONGNAME_LINKS = re.compile(r"^\S{10}\S?\s+(\d+)\s")


def metadata_of(attrs: asyncssh.SFTPAttrs) -> FileMetadata:
    mtime = None
    if attrs.mtime is not None:
        mtime = float(attrs.mtime) + (attrs.mtime_ns or 0) / 1e9
    atime = None
    if attrs.atime is not None:
        atime = float(attrs.atime) + (attrs.atime_ns or 0) / 1e9
    return FileMetadata(
        mode=attrs.permissions & 0o7777 if attrs.permissions is not None else None,
        uid=attrs.uid,
        gid=attrs.gid,
        atime=atime,
        mtime=mtime,
    )


def links_of(longname: str | bytes) -> int:
    """The link count in a long name; 1 when the server writes none."""
    text = longname.decode(errors="replace") if isinstance(longname, bytes) else longname
    match = _LONGNAME_LINKS.match(text)
    return int(match.group(1)) if match else 1


def check_time(name: str, value: float) -> int:
    seconds = int(value // 1)
    if not 0 <= seconds <= _U32_MAX:
        raise OSError(
            errno.EOVERFLOW,
            f"{name} {value:.0f}: SFTP keeps times from 1970 to 2106 only (32-bit seconds)",
        )
    return seconds


async def set_attributes(sftp: asyncssh.SFTPClient, remote: str, wanted: FileMetadata) -> None:
    """SETSTAT the fields of `wanted` that are set (filling in the other half
    of a pair from the file as it is)."""
    current: asyncssh.SFTPAttrs | None = None
    pair_owner = (wanted.uid is None) != (wanted.gid is None)
    pair_times = (wanted.atime is None) != (wanted.mtime is None)
    if pair_owner or pair_times:
        current = await sftp.stat(remote)
    attrs = asyncssh.SFTPAttrs()
    if wanted.mode is not None:
        attrs.permissions = wanted.mode & 0o7777
    if wanted.uid is not None or wanted.gid is not None:
        attrs.uid = wanted.uid if wanted.uid is not None else (current.uid if current else None)
        attrs.gid = wanted.gid if wanted.gid is not None else (current.gid if current else None)
    if wanted.atime is not None or wanted.mtime is not None:
        atime = wanted.atime if wanted.atime is not None else (current.atime if current else None)
        mtime = wanted.mtime if wanted.mtime is not None else (current.mtime if current else None)
        if atime is not None and mtime is not None:
            attrs.atime = check_time("atime", atime)
            attrs.mtime = check_time("mtime", mtime)
    await sftp.setstat(remote, attrs)
