"""--direct-io: every open tells the kernel to bypass its page cache."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from adapters.fuse.operations import FuseOperations
from application.vfs import ROOT_INODE, Vfs
from domain.volume import VfsOptions
from tests.fakes.storage import MemoryStorage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("direct_io", [False, True])
async def test_open_and_create_reply_with_direct_io(direct_io: bool) -> None:
    storage = MemoryStorage()
    storage.tree.put("f", b"data")
    vfs = Vfs(storage, VfsOptions())
    ops = FuseOperations(vfs, 1.0, direct_io=direct_io)
    entry = await ops.lookup(ROOT_INODE, b"f", None)  # type: ignore[arg-type]
    info = await ops.open(entry.st_ino, os.O_RDONLY, None)  # type: ignore[arg-type]
    assert info.direct_io is direct_io
    await ops.release(info.fh)
    created, _ = await ops.create(
        ROOT_INODE,
        b"g",
        0o644,
        os.O_WRONLY | os.O_CREAT,
        SimpleNamespace(uid=0, gid=0, umask=0o022, pid=1),  # type: ignore[arg-type]
    )
    assert created.direct_io is direct_io
    await ops.release(created.fh)
