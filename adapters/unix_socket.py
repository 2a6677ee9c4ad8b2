"""Binding a server's unix socket safely: the plugin API's and the admin API's.

A socket file that nobody answers on is left over from a daemon that died, and is
replaced; one that answers belongs to a daemon still running, and anything that
is not a socket is someone's file. Both are left alone.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat


class SocketPathTaken(Exception):
    """The path holds a live socket or something that is not a socket."""


def bind_unix_socket(
    path: str, *, mode: int, gid: int = -1, directory_mode: int = 0o755
) -> socket.socket:
    """A unix socket bound (not listening) at `path` with `mode` and group `gid`
    (-1: unchanged). It is bound under a umask of 077, so no other user can
    connect before the mode is set."""
    os.makedirs(os.path.dirname(path) or ".", mode=directory_mode, exist_ok=True)
    try:
        existing = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(existing):
            raise SocketPathTaken(f"{path} exists and is not a socket")
        if answers(path):
            raise SocketPathTaken(f"another daemon is already listening on {path}")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        if gid != -1:
            os.chown(path, -1, gid)
    except BaseException:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    finally:
        os.umask(old_umask)
    return sock


def answers(path: str) -> bool:
    """Whether a process accepts connections on the unix socket at `path`."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    else:
        return True
    finally:
        probe.close()
