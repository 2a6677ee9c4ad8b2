"""One volume's FUSE worker process: `python -m entrypoints.mount_worker`.

Reads a JSON job (see `adapters.mounting.protocol.WorkerJob`) from `--job-fd`
(default stdin), reports `ready` or `error <text>` as one line on `--status-fd`
(default stdout), then serves the mount until it is unmounted. pyfuse3 keeps its
session in module globals, hence one process per mount.

`--fork-server --socket-fd N`: the preloaded parent that the daemon asks for
workers (`entrypoints.fork_server`); each worker it forks runs `run_forked`, the
same job as here, with its stdout and stderr pointed at its volume's log."""

from __future__ import annotations

import argparse
import contextlib
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
    ProtocolError,
    WorkerJob,
    encode_failure,
    worker_paths,
)
from domain.errors import OptionError
from domain.log_format import log_format
from domain.options import given_value
from entrypoints.logging_setup import quiet_connection_logs

if TYPE_CHECKING:
    from entrypoints.worker_container import WorkerContainer

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


def load_worker_container() -> type[WorkerContainer]:
    """Import the worker's composition root, leaving dependency_injector's optional
    integrations out. Only for the worker process: they stay unimportable in it."""
    if not any(isinstance(finder, _NotForWorkers) for finder in sys.meta_path):
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
        "--fork-server",
        action="store_true",
        help="be the daemon's preloaded parent of mount workers (see entrypoints.fork_server)",
    )
    parser.add_argument("--socket-fd", type=int, help="--fork-server: the daemon's socket")
    parser.add_argument("--log-level", default="INFO", help="--fork-server: its own log level")
    parser.add_argument("--log-file", help="--fork-server: its log (default stderr)")
    args = parser.parse_args(argv)
    if args.fork_server:
        if args.socket_fd is None:
            parser.error("--fork-server needs --socket-fd")
        from entrypoints.fork_server import serve_forks

        return serve_forks(args.socket_fd, args.log_level, args.log_file)

    container_class = load_worker_container()
    status = _StatusChannel(args.status_fd)
    try:
        job = WorkerJob.from_json(_read_all(args.job_fd))
    except (ProtocolError, OSError) as e:
        status.send(encode_failure(str(e)))
        return 2
    finally:
        _retire_fd(args.job_fd)
    return run_job(job, status, container_class)


def run_forked(job_text: bytes, status_fd: int) -> int:
    """A worker forked by the fork server (which has loaded the worker container):
    its output goes to its volume's log, as a worker's started any other way."""
    status = _StatusChannel(status_fd)
    _retire_fd(0)  # the server's stdin is nothing of the worker's
    try:
        job = WorkerJob.from_json(job_text)
        _log_to_volume_log(job)
    except (ProtocolError, OSError) as e:
        status.send(encode_failure(str(e)))
        return 2
    return run_job(job, status, load_worker_container())


def run_job(job: WorkerJob, status: _StatusChannel, container_class: type[WorkerContainer]) -> int:
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
