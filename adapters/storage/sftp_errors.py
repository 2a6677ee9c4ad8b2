"""SFTP status codes in the port's terms: OSErrors with the volume path, lost
connections told apart, and the look-ups SFTP v3's few codes make necessary."""

from __future__ import annotations

import errno
import os

import asyncssh

from adapters.storage.sftp_metadata import metadata_of
from domain.remote_entry import RemoteEntry

_LOST_CODES = {asyncssh.FX_CONNECTION_LOST, asyncssh.FX_NO_CONNECTION}

_ERRNO_BY_CODE = {
    asyncssh.FX_NO_SUCH_FILE: errno.ENOENT,
    asyncssh.FX_NO_SUCH_PATH: errno.ENOENT,
    asyncssh.FX_PERMISSION_DENIED: errno.EACCES,
    asyncssh.FX_CANNOT_DELETE: errno.EACCES,
    asyncssh.FX_WRITE_PROTECT: errno.EROFS,
    asyncssh.FX_FILE_ALREADY_EXISTS: errno.EEXIST,
    asyncssh.FX_DIR_NOT_EMPTY: errno.ENOTEMPTY,
    asyncssh.FX_NOT_A_DIRECTORY: errno.ENOTDIR,
    asyncssh.FX_FILE_IS_A_DIRECTORY: errno.EISDIR,
    asyncssh.FX_NO_SPACE_ON_FILESYSTEM: errno.ENOSPC,
    asyncssh.FX_QUOTA_EXCEEDED: errno.EDQUOT,
    asyncssh.FX_OP_UNSUPPORTED: errno.EOPNOTSUPP,
    asyncssh.FX_INVALID_FILENAME: errno.EINVAL,
    asyncssh.FX_LINK_LOOP: errno.ELOOP,
}


def is_lost(exc: BaseException) -> bool:
    """Whether `exc` means the connection is gone (not a refused request)."""
    if isinstance(exc, asyncssh.SFTPError):
        return exc.code in _LOST_CODES
    return isinstance(exc, asyncssh.Error | ConnectionError)


def lost_reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, asyncssh.SFTPError) else str(exc)


def os_error(exc: asyncssh.SFTPError, path: str, code: int | None = None) -> OSError:
    err = code if code is not None else _ERRNO_BY_CODE.get(exc.code, errno.EIO)
    # OSError(errno, ...) builds the matching subclass (FileNotFoundError, ...).
    return OSError(err, exc.reason or os.strerror(err), path)


async def raise_if_not_dir(
    sftp: asyncssh.SFTPClient, exc: asyncssh.SFTPError, remote: str, path: str
) -> None:
    """Turn `exc` into ENOTDIR when `remote` exists but is no directory.

    OpenSSH's server folds ENOTDIR into FX_NO_SUCH_FILE (and some servers into
    FX_FAILURE), so the only way to tell is to look.
    """
    try:
        attrs = await sftp.stat(remote)
    except asyncssh.SFTPError:
        return
    if attrs.type != asyncssh.FILEXFER_TYPE_DIRECTORY:
        raise os_error(exc, path, errno.ENOTDIR) from None


async def has_entries(sftp: asyncssh.SFTPClient, remote: str) -> bool:
    try:
        return any(n not in (".", "..") for n in await sftp.listdir(remote))
    except asyncssh.SFTPError:
        return False


def entry_of(name: str, attrs: asyncssh.SFTPAttrs, nlink: int = 1) -> RemoteEntry:
    mtime = float(attrs.mtime or 0) + (attrs.mtime_ns or 0) / 1e9
    return RemoteEntry(
        name=name,
        is_dir=attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY,
        size=attrs.size or 0,
        mtime=mtime,
        metadata=metadata_of(attrs),
        nlink=nlink,
    )
