"""Renaming on an SFTP server with POSIX semantics: a file at the target is
replaced, and a refusal is explained with the errno a local rename would give."""

from __future__ import annotations

import errno

import asyncssh

from adapters.storage.sftp_errors import has_entries, os_error


class SftpRenamer:
    """Uses posix-rename@openssh.com while the server offers it; without it, a
    plain SFTP rename, which refuses an existing target, after removing a file there."""

    def __init__(self) -> None:
        self._posix_rename = True  # until the server says otherwise

    async def replace(
        self, sftp: asyncssh.SFTPClient, old: str, new: str, src: str, dst: str
    ) -> None:
        """Rename `old` over `new` (remote paths; `src` and `dst` are the volume's)."""
        try:
            if self._posix_rename:
                try:
                    await sftp.posix_rename(old, new)
                    return
                except asyncssh.SFTPOpUnsupported:
                    self._posix_rename = False
            try:
                await sftp.rename(old, new)
            except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists):
                if not await sftp.isfile(new):
                    raise
                await sftp.remove(new)
                await sftp.rename(old, new)
        except asyncssh.SFTPFailure as exc:
            raise await _explain(sftp, exc, old, new, src, dst) from None
        except asyncssh.SFTPNoSuchFile as exc:
            gone = src if not await sftp.exists(old) else dst
            raise os_error(exc, gone) from None


async def _explain(
    sftp: asyncssh.SFTPClient,
    exc: asyncssh.SFTPError,
    old: str,
    new: str,
    src: str,
    dst: str,
) -> OSError:
    """SFTP v3 answers FX_FAILURE for every refused rename: look at both ends."""
    src_dir = await sftp.isdir(old)
    if await sftp.isdir(new):
        if not src_dir:
            return os_error(exc, dst, errno.EISDIR)
        if await has_entries(sftp, new):
            return os_error(exc, dst, errno.ENOTEMPTY)
    elif src_dir and await sftp.exists(new):
        return os_error(exc, dst, errno.ENOTDIR)
    return os_error(exc, src)
