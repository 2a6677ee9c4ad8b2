"""A cache directory whose disk fills up: writes fail with ENOSPC (not EIO, not
silence), nothing already written is lost, and the volume works again once space
is freed. The disk is a small tmpfs mounted by the test."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.fixtures.fuse_mount import MountFactory, fuse_mount
from tests.integration.fixtures.polling import holds_within

__all__ = ["fuse_mount"]  # the fixture, imported for pytest

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(disk)],
                   check=True)  # fmt: skip
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def free_bytes(disk: Path) -> int:
    st = os.statvfs(disk)
    return st.f_bavail * st.f_frsize


def write_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))


def test_a_full_cache_disk_gives_enospc_and_loses_nothing(
    fuse_mount: MountFactory, small_disk: Path
) -> None:
    m = fuse_mount("--cache-dir", str(small_disk), "--opt", "vfs-cache-mode=writes",
                   "--opt", "vfs-write-back=1h")  # fmt: skip
    kept = os.urandom(3 * MiB)
    (m.mountpoint / "kept.bin").write_bytes(kept)

    with pytest.raises(OSError) as raised:
        write_file(m.mountpoint / "big.bin", 16 * MiB)
    assert raised.value.errno == errno.ENOSPC

    assert (m.mountpoint / "kept.bin").read_bytes() == kept
    (m.mountpoint / "big.bin").unlink()
    # FUSE releases a closed file after close() returns; its blocks go then.
    assert holds_within(lambda: free_bytes(small_disk) > 4 * MiB)
    assert list((small_disk / "vfs" / "vol" / "tmp").iterdir()) == []  # no half records
    after = os.urandom(2 * MiB)
    (m.mountpoint / "after.bin").write_bytes(after)  # space freed: writes work again
    m.unmount()  # uploads what is pending before the worker exits
    assert (m.backing / "kept.bin").read_bytes() == kept
    assert (m.backing / "after.bin").read_bytes() == after
    assert not (m.backing / "big.bin").exists()
