"""One volume's FUSE worker process: `python -m entrypoints.mount_worker`.

Reads a JSON job (see `adapters.mounting.protocol.WorkerJob`) from `--job-fd`
(default stdin), reports `ready` or `error <text>` as one line on `--status-fd`
(default stdout), then serves the mount until it is unmounted. pyfuse3 keeps its
session in module globals, hence one process per mount.

`--spare`: the daemon starts the next worker before it has a job for it, so that
a Mount does not wait for Python to start and import all this (most of a
Mount's time). Such a worker imports what `--preload` names, says `idle` on
the status fd, waits for its job, and points its stdout and stderr at its
volume's log once the job names the volume. Its stdin is the daemon's pipe: if the daemon goes away first, it
reads an empty job and exits."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import types
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

import anyio
import pyfuse3.asyncio
from loguru import logger

from adapters.mounting.protocol import (
    SPARE_IDLE,
    ProtocolError,
    WorkerJob,
    encode_failure,
    worker_paths,
)
from adapters.storage.factory import DefaultStorageFactory
from domain.errors import OptionError
from domain.log_format import log_format
from domain.options import given_value
from entrypoints.logging_setup import quiet_connection_logs

if TYPE_CHECKING:
    from entrypoints.worker_container import WorkerContainer

_SPARE_NICENESS = 10
# dependency_injector probes for its optional integrations when imported: web
# frameworks, pydantic settings and YAML. The worker uses none of them, and they
# would cost every worker about 0.3 s more at start and 12 MiB more of memory.
_NOT_FOR_WORKERS = frozenset(
    ("fastapi", "starlette", "flask", "werkzeug", "pydantic", "pydantic_settings", "yaml")
)


class _NotForWorkers(importlib.abc.MetaPathFinder):
    """Makes the packages above unimportable, as if not installed: the probes
    catch ImportError and go without them."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in _NOT_FOR_WORKERS:
            raise ModuleNotFoundError(f"{fullname} is not loaded in a mount worker", name=fullname)
        return None


_FORMAT = (
    "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {extra[volume]} | "
    "{name}:{function}:{line} - {message}"
)


class _StatusChannel:
    """The readiness report: written once, then the fd is closed so that a parent
    that has gone away (daemon crash) cannot hurt the worker later."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @property
    def reported(self) -> bool:
        return self._fd is None

    def send(self, line: bytes) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(fd, line)
        _retire_fd(fd)


def _retire_fd(fd: int) -> None:
    # Point stdio fds at /dev/null rather than leaving them closed, so nothing else
    # opened later lands on 0/1 and gets written to by accident.
    if fd <= 2:
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, fd)
        os.close(null)
    else:
        os.close(fd)


class _InterceptHandler(logging.Handler):
    """pyfuse3 logs through the standard library; send it to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame: FrameType | None = logging.currentframe()
        depth = 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def _setup_logging(job: WorkerJob) -> None:
    logger.remove()
    logger.configure(extra={"volume": job.name})
    level = job.log_level.upper()
    template, serialize = _FORMAT, False
    raw_format = given_value("log-format", job.defaults, job.options)
    if raw_format is not None:  # --log-format / -o log-format: rclone's layout
        try:
            chosen = log_format(raw_format, "{extra[volume]} {name}")
        except OptionError:
            chosen = None  # refused at Create already; keep the default layout
        if chosen is not None:
            template, serialize = chosen.template, chosen.json
    logger.add(sys.stderr, level=level, format=template, serialize=serialize)
    if job.log_file:
        logger.add(job.log_file, level=level, format=template, serialize=serialize)
    logging.basicConfig(handlers=[_InterceptHandler()], level=level, force=True)
    quiet_connection_logs(level)


def _log_to_volume_log(job: WorkerJob) -> None:
    """Send stdout and stderr to the volume's worker log, where the daemon looks."""
    path = worker_paths(job.cache_dir, job.name).log
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        for std in (1, 2):
            os.dup2(fd, std)
    finally:
        os.close(fd)


_CAP_SYS_NICE = 23


def _may_raise_priority() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            effective = next(line for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration):
        return False
    return bool(int(effective.split()[1], 16) >> _CAP_SYS_NICE & 1)


def _yield_cpu() -> int | None:
    """A spare starts while other workers mount: it imports at a lower priority,
    restored once it has a job. Only where it can be restored (CAP_SYS_NICE,
    which root lacks inside a managed plugin without it); returns the priority
    to restore, or None."""
    if not _may_raise_priority():
        return None
    priority = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, min(priority + _SPARE_NICENESS, 19))
    except OSError:
        return None
    return priority


def _preload(types: list[str]) -> None:
    """Import now what would otherwise be imported once the job is known: the
    storage backends, and anyio's event loop backend (`anyio.run` imports it)."""
    with contextlib.suppress(ImportError):
        importlib.import_module("anyio._backends._asyncio")
    factory = DefaultStorageFactory()
    for type_name in types:
        factory.preload(type_name)


def load_worker_container() -> type[WorkerContainer]:
    """Import the worker's composition root, leaving dependency_injector's optional
    integrations out. Only for the worker process: they stay unimportable in it."""
    sys.meta_path.insert(0, _NotForWorkers())
    from entrypoints.worker_container import WorkerContainer

    return WorkerContainer


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def describe(exc: BaseException) -> str:
    """The message to show the operator: the innermost real error, not a wrapper."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc)
    return text if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m entrypoints.mount_worker")
    parser.add_argument("--job-fd", type=int, default=0, help="fd to read the JSON job from")
    parser.add_argument("--status-fd", type=int, default=1, help="fd to report readiness on")
    parser.add_argument(
        "--spare",
        action="store_true",
        help="started ahead of its job: log to the job's volume log once it is read",
    )
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="TYPE",
        help="import the storage backend TYPE before reading the job (repeatable)",
    )
    args = parser.parse_args(argv)

    priority = _yield_cpu() if args.spare else None
    container_class = load_worker_container()
    _preload(args.preload)
    if args.spare:
        with contextlib.suppress(OSError):
            os.write(args.status_fd, SPARE_IDLE)
    status = _StatusChannel(args.status_fd)
    try:
        job = WorkerJob.from_json(_read_all(args.job_fd))
        if priority is not None:
            os.setpriority(os.PRIO_PROCESS, 0, priority)
        if args.spare:
            _log_to_volume_log(job)
    except (ProtocolError, OSError) as e:
        status.send(encode_failure(str(e)))
        return 2
    finally:
        _retire_fd(args.job_fd)

    _setup_logging(job)
    logger.info("mount worker pid {} starting for {}", os.getpid(), job.mountpoint)
    pyfuse3.asyncio.enable()
    try:
        worker = container_class(job=job).worker(report=status.send)
        anyio.run(worker.run, backend="asyncio")
    except BaseException as e:
        message = describe(e)
        logger.opt(exception=e).error("mount worker failed: {}", message)
        status.send(encode_failure(message))
        return 1
    # A session that ended without ever being ready is a failure run() reports itself.
    return 0


if __name__ == "__main__":
    sys.exit(main())
