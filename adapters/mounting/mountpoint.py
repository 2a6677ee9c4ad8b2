"""Checks and repairs of a volume's mountpoint, shared by the daemon's manager
and the worker: is it fit to mount on, is a mount there alive, clear a dead one."""

from __future__ import annotations

import contextlib
import errno
import os

from loguru import logger

from adapters.mounting.system import is_mounted, lazy_unmount, lock_holder, mount_at, probe_stale
from domain.errors import MountFailed


def check_mountpoint(mp: str, *, allow_non_empty: bool) -> None:
    """Raise MountFailed unless a mount may go on `mp` now."""
    if is_mounted(mp):  # first: stat of a stale mount would fail confusingly
        raise MountFailed(f"directory {mp} is already mounted")
    if not os.path.isdir(mp):
        raise MountFailed(f"mountpoint {mp} does not exist or is not a directory")
    if not allow_non_empty and os.listdir(mp):
        raise MountFailed(f"mountpoint {mp} is not empty, use allow-non-empty=true to mount anyway")


async def prepare_mountpoint(mp: str) -> bool:
    """Make the mountpoint; False when a live mount is there already (the
    directory then exists, and must stay untouched)."""
    if await mounted_and_live(mp):
        return False
    _make_directory(mp)
    return True


def _make_directory(mp: str) -> None:
    if os.path.isdir(mp):
        return
    os.makedirs(os.path.dirname(mp) or "/", exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(mp, 0o755)
    os.chmod(mp, 0o755)  # the daemon's umask must not narrow it


async def remove_mountpoint(mp: str) -> bool:
    """Remove a removed volume's mountpoint, unless something was left in it.
    False when something is still mounted there (the volume is then still in use)."""
    if await mounted_and_live(mp):
        logger.warning("not removing {}: something is still mounted there", mp)
        return False
    try:
        os.rmdir(mp)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.ENOTEMPTY:
            raise
        logger.warning("not removing {}: the directory is not empty", mp)
    return True


async def unmount_or_fail(mp: str) -> None:
    """A lazy unmount whose failure is the Mount's (or Remove's) error."""
    try:
        await lazy_unmount(mp)
    except OSError as e:
        raise MountFailed(str(e)) from e


async def mounted_and_live(mp: str) -> bool:
    """Whether a mount at `mp` is in use; a stale one ("Transport endpoint is not
    connected", its server dead) is cleared first and counts as not mounted."""
    if not is_mounted(mp):
        return False
    stale = await probe_stale(mp)
    if stale is None:
        logger.warning("the mount at {} does not answer; leaving it alone", mp)
        return True
    if not stale:
        return True
    await unmount_or_fail(mp)
    logger.warning("cleared a stale FUSE mount at {}", mp)
    return False


async def clear_orphan_mount(mp: str, lock_path: str) -> None:
    """With no worker answering for the volume, a FUSE mount at its mountpoint is
    a leftover: detach it. If a worker process still holds the volume's lock
    (hung, or slow to answer), only a provably dead mount is cleared."""
    entry = mount_at(mp)
    if lock_holder(lock_path) is None and entry is not None and entry.fstype.startswith("fuse"):
        logger.warning("clearing a leftover FUSE mount at {}", mp)
        await unmount_or_fail(mp)
    else:
        await mounted_and_live(mp)
