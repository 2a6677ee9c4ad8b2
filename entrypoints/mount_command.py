"""`cloudvol mount REMOTE MOUNTPOINT [flags]`: one remote mounted in the
foreground, like `rclone mount`. It is the mount worker of `serve docker`, built
by the same `WorkerContainer` from a job made of the command line instead of a
Docker volume: the same VFS, cache, uploads and control socket, so `cloudvol
status` (through a daemon using the same --cache-dir) shows it.

Ctrl-C or SIGTERM unmounts, then finishes the pending uploads (a second one stops
them; they stay in the cache for the next mount of the same remote there).
`--daemon` detaches once the mount is ready, as rclone does."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import select
import sys
import time
from collections.abc import Callable

from adapters.mounting.protocol import WorkerJob, decode_readiness, encode_failure, worker_paths
from domain.errors import OptionError
from domain.values import parse_duration
from domain.worker_lifecycle import JobMode

_BOOLEAN_TRUE = ("1", "t", "T", "true", "TRUE", "True")
DEFAULT_DAEMON_WAIT = 60.0


def mount_name(remote: str, mountpoint: str) -> str:
    """The worker's name: its lock, socket, log and cache directory under the
    cache dir. The same remote at the same mountpoint gets the same name, so a
    mount started again resumes the uploads the last one left."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", os.path.basename(mountpoint.rstrip("/")) or "root")
    digest = hashlib.sha256(f"{remote}\0{mountpoint}".encode()).hexdigest()[:10]
    return f"mount-{slug[:40]}-{digest}"


def normal_remote(remote: str) -> str:
    """A bare relative path is a local directory, as in rclone: made absolute."""
    if ":" in remote or remote.startswith("/"):
        return remote
    return os.path.abspath(remote)


def build_job(
    ns: argparse.Namespace,
    *,
    cache_dir: str,
    defaults: dict[str, str],
    log_level: str,
    config_path: str | None,
) -> WorkerJob:
    remote = normal_remote(ns.remote)
    mountpoint = os.path.abspath(ns.mountpoint)
    name = mount_name(remote, mountpoint)
    return WorkerJob(
        name=name,
        mountpoint=mountpoint,
        options={"remote": remote},
        defaults=defaults,
        cache_dir=cache_dir,
        control_socket=worker_paths(cache_dir, name).socket,
        log_level=log_level,
        log_file=ns.log_file and os.path.abspath(ns.log_file),
        config_path=config_path,
        mode=JobMode.MOUNT,
        linger=0.0,  # unmounted: upload what is pending, then exit
    )


def daemon_flags(daemon: str | None, daemon_wait: str | None) -> tuple[bool, float]:
    detach = daemon is not None and daemon in _BOOLEAN_TRUE
    wait = (
        DEFAULT_DAEMON_WAIT if daemon_wait is None else parse_duration("daemon-wait", daemon_wait)
    )
    return detach, wait


def check_job(job: WorkerJob) -> None:
    """Parse the job as the worker will, so a bad flag or remote fails here, before
    anything is mounted or detached. Raises OptionError."""
    from entrypoints.worker_container import parse_job

    parse_job(job)


def run_worker(job: WorkerJob, report: Callable[[bytes], None]) -> None:
    """The mount, until it goes and its uploads are done."""
    import anyio
    import pyfuse3.asyncio

    from entrypoints.mount_worker import load_worker_container

    pyfuse3.asyncio.enable()
    worker = load_worker_container()(job=job).worker(report=report)
    anyio.run(worker.run, backend="asyncio")


def detach_until_ready(job: WorkerJob, wait: float) -> int | None:
    """Fork; the child (in a session of its own, stdio on /dev/null or the log)
    returns None and goes on to mount. The parent returns the exit code once the
    child reports: 0 when the mount is ready, 1 on failure or after `wait` s."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.setsid()
        _detach_stdio(job)
        os.environ["CLOUDVOL_MOUNT_REPORT_FD"] = str(write_fd)
        return None
    os.close(write_fd)
    deadline = time.monotonic() + wait
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read_fd], [], [], left)[0]:
            print(
                f"cloudvol mount: not ready after {wait:g} s (--daemon-wait); the mount "
                f"goes on in process {pid}",
                file=sys.stderr,
            )
            return 1
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        data += chunk
    os.close(read_fd)
    readiness = decode_readiness(data)
    if readiness is not None and readiness.ready:
        print(f"cloudvol mount: {job.mountpoint} is mounted (pid {pid})")
        return 0
    reason = readiness.error if readiness is not None else "the mount process exited"
    print(f"cloudvol mount: error: {reason}", file=sys.stderr)
    return 1


def _detach_stdio(job: WorkerJob) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    if job.log_file:
        out = null
    else:
        # No --log-file: the log goes where a daemon's worker's does.
        path = worker_paths(job.cache_dir, job.name).log
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        out = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in {null, out}:
        os.close(fd)


def mount(ns: argparse.Namespace, job: WorkerJob, *, detach: bool, wait: float) -> int:
    from loguru import logger

    from entrypoints.mount_worker import describe

    if detach:
        code = detach_until_ready(job, wait)
        if code is not None:
            return code
    report_fd = int(os.environ.pop("CLOUDVOL_MOUNT_REPORT_FD", "-1"))

    def report(line: bytes) -> None:
        nonlocal report_fd
        if report_fd >= 0:
            os.write(report_fd, line)
            os.close(report_fd)  # the parent exits now; nothing more goes there
            report_fd = -1
        logger.info("{} mounted at {} (Ctrl-C or SIGTERM unmounts)", ns.remote, job.mountpoint)

    try:
        run_worker(job, report)
    except BaseException as e:
        message = describe(e)
        logger.error("cloudvol mount: {}", message)
        if report_fd >= 0:
            os.write(report_fd, encode_failure(message))
        return 130 if isinstance(e, KeyboardInterrupt) else 1
    return 0


def check_options(job: WorkerJob) -> str | None:
    """None if the job's options parse; else the message saying which is wrong."""
    try:
        check_job(job)
    except OptionError as e:
        return str(e)
    return None
