"""The FUSE front of the VFS (pyfuse3, asyncio mode, one mount per process)."""

from adapters.fuse.mount import fuse_options, mount_device, run_fuse
from adapters.fuse.operations import FuseOperations

__all__ = ["FuseOperations", "fuse_options", "mount_device", "run_fuse"]
