"""The fork server's main (`python -m entrypoints.mount_worker --fork-server`):
import what every mount worker needs, once, then fork the workers the daemon
asks for (`adapters.mounting.fork_server` has the loop and the protocol).

Preloaded here: the worker container (pyfuse3, anyio, loguru, the VFS and its
cache, dependency_injector without its optional integrations) and anyio's
asyncio backend, plus the local and SFTP backends, the common ones. Another
backend (S3, fsspec) is imported here the first time a job needs it, so that
its later workers share it too; a process that never mounts S3 never pays for
botocore. After each import the garbage collector is run and frozen: frozen
objects are never written to by the collector, so a child's pages of them stay
shared with this process (copy-on-write), which is what makes a worker cheap."""

from __future__ import annotations

import gc
import importlib
import socket
import sys
import threading

from loguru import logger

from adapters.mounting.fork_server import ForkRequest, ForkServerLoop
from adapters.storage.factory import DefaultStorageFactory
from entrypoints.mount_worker import load_worker_container, run_forked

_PRELOADED_TYPES = ("local", "sftp")
_FORMAT = "{time:YYYY/MM/DD HH:mm:ss} {level: <7} fork server: {message}"
# Imported by every worker as it starts, lazily (the worker container's FUSE
# frontend, anyio.run's backend and signal handling, the executor asyncio resolves
# host names in, pwd for SSH keys): imported here instead, each worker shares them
# rather than holding a private copy (a mounted worker's sys.modules, compared
# with the server's, showed them).
_WORKER_START_MODULES = (
    "anyio._backends._asyncio",
    "anyio._core._signals",
    "adapters.fuse.mount",
    "adapters.fuse.operations",
    "concurrent.futures.thread",
    "pwd",
)


class _Preloader:
    def __init__(self) -> None:
        self._factory = DefaultStorageFactory()
        self._done: set[str] = set()

    def preload(self, type_name: str) -> None:
        if type_name in self._done:
            return
        self._done.add(type_name)
        before = len(sys.modules)
        self._factory.preload(type_name)
        if len(sys.modules) != before:
            logger.debug("fork server: preloaded the {} backend", type_name)
            _freeze()


def _freeze() -> None:
    gc.collect()
    gc.freeze()


def _run_child(request: ForkRequest, status_fd: int) -> int:
    return run_forked(request.job, status_fd)


def serve_forks(socket_fd: int, log_level: str, log_file: str | None = None) -> int:
    logger.remove()
    logger.add(log_file or sys.stderr, level=log_level.upper(), format=_FORMAT)
    load_worker_container()
    for module in _WORKER_START_MODULES:
        importlib.import_module(module)
    preloader = _Preloader()
    for type_name in _PRELOADED_TYPES:
        preloader.preload(type_name)
    _freeze()
    # fork() copies only the calling thread: a lock another thread held would stay
    # locked forever in the child. Nothing imported above may start a thread.
    if threading.active_count() != 1:
        logger.error("fork server: {} threads after imports; refusing", threading.active_count())
        return 1
    sock = socket.socket(fileno=socket_fd)
    logger.debug("fork server ready")
    ForkServerLoop(sock, _run_child, preloader.preload).serve()
    return 0
