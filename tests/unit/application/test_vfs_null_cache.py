"""A VFS without a cache directory runs on the null cache: cache mode off only,
every open uncached, nothing pending."""

from __future__ import annotations

import errno
import os

import pytest

from application.vfs import ROOT_INODE, Vfs
from application.vfs.cache.null import NullCache
from domain.errors import OptionError
from domain.volume import CacheMode, VfsOptions
from tests.fakes.storage import MemoryStorage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_mode_off_without_a_cache_directory_serves_files_uncached() -> None:
    storage = MemoryStorage()
    vfs = Vfs(storage, VfsOptions(cache_mode=CacheMode.OFF))
    assert isinstance(vfs.cache, NullCache)
    await vfs.start()
    fh, _ = await vfs.create(ROOT_INODE, "f", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    await vfs.write(fh, 0, b"data")
    await vfs.flush(fh)
    await vfs.release(fh)
    assert storage.tree.get("f") == b"data"
    ino = (await vfs.resolve("f")).inode
    await vfs.setattr(ino, mtime=1_500_000_000.0)  # set on the remote, nothing cached
    assert storage.tree.files["f"].mtime == 1_500_000_000.0
    await vfs.unlink(ROOT_INODE, "f")
    await vfs.drain()
    assert vfs.pending_uploads() == 0 and await vfs.cache.clean() == []
    await vfs.stop()


def test_other_modes_need_a_cache_directory() -> None:
    with pytest.raises(OptionError):
        Vfs(MemoryStorage(), VfsOptions(cache_mode=CacheMode.WRITES))


async def test_the_null_cache_opens_no_item() -> None:
    with pytest.raises(OSError) as caught:
        await NullCache().acquire("f", None, 0.0)
    assert caught.value.errno == errno.EIO
