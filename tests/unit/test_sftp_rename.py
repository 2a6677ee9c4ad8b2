"""SftpRenamer against a fake SFTP client: posix-rename while offered, a plain
rename over a removed file without it, and SFTP v3's FX_FAILURE explained."""

from __future__ import annotations

import errno
from typing import Any

import asyncssh
import pytest

from adapters.storage.sftp_rename import SftpRenamer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeSftp:
    """Paths and whether each is a directory; a server without posix-rename if told."""

    def __init__(self, *, posix: bool, **kinds: bool) -> None:
        self.kinds = {k.replace("__", "/"): v for k, v in kinds.items()}
        self.posix = posix
        self.calls: list[str] = []

    def _move(self, old: str, new: str) -> None:
        if old not in self.kinds:
            raise asyncssh.SFTPNoSuchFile("no such file")
        if new in self.kinds and (self.kinds[new] or self.kinds[old]):
            raise asyncssh.SFTPFailure("failure")  # what OpenSSH says for all of these
        self.kinds[new] = self.kinds.pop(old)

    async def posix_rename(self, old: str, new: str) -> None:
        self.calls.append("posix_rename")
        if not self.posix:
            raise asyncssh.SFTPOpUnsupported("unsupported")
        self._move(old, new)

    async def rename(self, old: str, new: str) -> None:
        self.calls.append("rename")
        if new in self.kinds and not self.kinds[new] and old in self.kinds:
            raise asyncssh.SFTPFailure("failure")  # plain SFTP never replaces
        self._move(old, new)

    async def remove(self, path: str) -> None:
        self.calls.append("remove")
        del self.kinds[path]

    async def isfile(self, path: str) -> bool:
        return self.kinds.get(path) is False

    async def isdir(self, path: str) -> bool:
        return self.kinds.get(path) is True

    async def exists(self, path: str) -> bool:
        return path in self.kinds

    async def listdir(self, path: str) -> list[str]:
        return [p.rsplit("/", 1)[-1] for p in self.kinds if p.startswith(f"{path}/")]


async def replace(sftp: FakeSftp, renamer: SftpRenamer, old: str, new: str) -> None:
    fake: Any = sftp
    await renamer.replace(fake, old, new, old, new)


async def test_posix_rename_while_offered_then_remove_and_rename() -> None:
    renamer = SftpRenamer()
    modern = FakeSftp(posix=True, a=False, b=False)
    await replace(modern, renamer, "a", "b")
    assert modern.kinds == {"b": False} and modern.calls == ["posix_rename"]

    old_server = FakeSftp(posix=False, a=False, b=False, c=False)
    await replace(old_server, renamer, "a", "b")
    assert old_server.calls == ["posix_rename", "rename", "remove", "rename"]
    await replace(old_server, renamer, "b", "c")  # not asked again
    assert old_server.calls[4:] == ["rename", "remove", "rename"]
    assert old_server.kinds == {"c": False}


@pytest.mark.parametrize(
    ("old", "new", "code", "named"),
    [
        ("f", "d", errno.EISDIR, "d"),
        ("d", "full", errno.ENOTEMPTY, "full"),
        ("d", "f", errno.ENOTDIR, "f"),
        ("missing", "x", errno.ENOENT, "missing"),
    ],
)
async def test_refusals_are_explained(old: str, new: str, code: int, named: str) -> None:
    sftp = FakeSftp(posix=True, f=False, d=True, full=True, full__x=False)
    with pytest.raises(OSError) as info:
        await replace(sftp, SftpRenamer(), old, new)
    assert (info.value.errno, info.value.filename) == (code, named)
