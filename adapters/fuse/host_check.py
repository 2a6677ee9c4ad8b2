"""Whether this host can serve FUSE mounts at all.

The daemon checks once at start, so that an operator learns what is missing from the
daemon's own message instead of from the first `docker run` that fails to mount.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

FUSE_DEVICE = "/dev/fuse"
FUSERMOUNT = "fusermount3"


def fuse_problems(
    device: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> list[str]:
    """What keeps this process from mounting FUSE file systems, one sentence each;
    empty when nothing does."""
    device = device or FUSE_DEVICE
    problems = []
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        problems.append(
            f"{device} does not exist: load the kernel's fuse module (modprobe fuse),"
            f" or give the container the daemon runs in the device (--device {FUSE_DEVICE})"
        )
    except PermissionError:
        problems.append(
            f"{device} cannot be opened for reading and writing: run the daemon as root,"
            " or allow this container or user to use the device"
        )
    except OSError as exc:
        problems.append(f"{device} cannot be opened: {exc.strerror}")
    else:
        os.close(fd)
    if which(FUSERMOUNT) is None:
        problems.append(
            f"{FUSERMOUNT} is not on the PATH: install FUSE 3"
            " (the fuse3 package on Debian, Ubuntu, Fedora and RHEL)"
        )
    return problems
