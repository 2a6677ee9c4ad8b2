"""What statfs(2) shows for a VFS mount."""

from __future__ import annotations

from dataclasses import dataclass

from domain.volume import UNLIMITED, VfsOptions

# rclone's mount reports 1 PiB and a billion inodes when the remote says nothing.
_STATFS_BLOCK = 4096
_DEFAULT_TOTAL = 1 << 50
_DEFAULT_FILES = 1_000_000_000
_NAME_MAX = 255


@dataclass(frozen=True, slots=True)
class FsStats:
    block_size: int
    blocks: int
    blocks_free: int
    blocks_avail: int
    files: int
    files_free: int
    name_max: int


def fs_stats(options: VfsOptions, used: int = 0) -> FsStats:
    """`used`: bytes used, as --vfs-used-is-size counts them (the remote reports
    no usage through the port, so 0 otherwise)."""
    total = options.disk_space_total_size
    if total == UNLIMITED or total < 0:
        total = _DEFAULT_TOTAL
    blocks = total // _STATFS_BLOCK
    free = max(0, blocks - (used + _STATFS_BLOCK - 1) // _STATFS_BLOCK)
    return FsStats(
        block_size=_STATFS_BLOCK,
        blocks=blocks,
        blocks_free=free,
        blocks_avail=free,
        files=_DEFAULT_FILES,
        files_free=_DEFAULT_FILES,
        name_max=_NAME_MAX,
    )
