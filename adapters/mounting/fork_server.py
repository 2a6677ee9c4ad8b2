"""The forking parent of the mount workers (the daemon's side is `fork_client`).

Why: a worker that starts as a fresh interpreter imports the FUSE and storage
stacks itself, about 35 MiB of private pages and most of a second. This process
imports them once (`entrypoints.fork_server` decides what), freezes the garbage
collector (`gc.freeze()`: the collector then never writes to those objects, so
their pages stay shared with every child), and forks one child per worker.

It is single-threaded (the daemon has threads, so the daemon must not fork) and
does nothing but this loop:

- The daemon and this process share one `SOCK_SEQPACKET` socket pair (one
  message per request, never split). A request is a JSON object
  `{"job": <the WorkerJob's JSON>, "preload": [<backend type>, ...]}` with two
  fds attached (SCM_RIGHTS): the write ends of the worker's status pipe
  (readiness, exactly as a worker started any other way reports it) and of its
  exit pipe.
- The server imports what `preload` names (in itself, so later children share
  it), forks, and replies `{"pid": <pid>}` with a pidfd of the child attached
  (opened before the child can be reaped, so it can never name a reused pid);
  or `{"error": <text>}`. The daemon watches the worker through that pidfd: it
  is not the worker's parent.
- The child calls `setsid()` (its own session, outliving the daemon and this
  server), closes everything of the server's, and runs the job; it never
  returns into this loop.
- This server reaps its children (SIGCHLD through a wakeup pipe) and writes
  each one's exit code (`-N` for signal N, as `subprocess` says it) as one line
  to its exit pipe, which it then closes. If the server is gone first, the
  daemon reads EOF there instead and knows only that the worker has exited.
- EOF on the socket (the daemon exited or crashed) ends the server; its running
  children carry on, reparented to init. A new daemon starts a new server, from
  the code installed then: after an upgrade, new workers run the new code,
  while old ones serve until they are retired.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass

MAX_REQUEST = 1024 * 1024  # a job is a few KiB; one seqpacket message each
_FDS_PER_REQUEST = 2  # status pipe, exit pipe


@dataclass(frozen=True)
class ForkRequest:
    job: bytes  # the WorkerJob's JSON, parsed (and refused if bad) in the child
    preload: tuple[str, ...]


def encode_request(job: bytes, preload: tuple[str, ...]) -> bytes:
    return json.dumps({"job": job.decode(), "preload": list(preload)}).encode()


def decode_request(data: bytes) -> ForkRequest:
    raw = json.loads(data)
    if not isinstance(raw, dict) or not isinstance(raw.get("job"), str):
        raise ValueError("fork request without a job")
    preload = raw.get("preload", [])
    if not isinstance(preload, list) or not all(isinstance(t, str) for t in preload):
        raise ValueError("fork request: preload must be a list of backend types")
    return ForkRequest(raw["job"].encode(), tuple(preload))


# What runs in the child: (request, status fd) -> exit code. Its stdout and stderr
# are still the server's; pointing them at the volume's log is its business.
RunChild = Callable[[ForkRequest, int], int]
Preload = Callable[[str], None]


class ForkServerLoop:
    def __init__(self, sock: socket.socket, run_child: RunChild, preload: Preload) -> None:
        self._sock = sock
        self._run_child = run_child
        self._preload = preload
        self._exit_fds: dict[int, int] = {}  # child pid -> write end of its exit pipe
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def serve(self) -> None:
        """Until the daemon closes its end of the socket."""
        signal.set_wakeup_fd(self._wake_w)
        # A handler (not SIG_IGN, which would auto-reap and lose exit codes) so that
        # SIGCHLD writes to the wakeup fd.
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        try:
            while True:
                readable, _, _ = select.select([self._sock.fileno(), self._wake_r], [], [])
                if self._wake_r in readable:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                if self._sock.fileno() in readable and not self._answer_one():
                    return
                self._reap()
        finally:
            signal.set_wakeup_fd(-1)
            self._reap()

    def _answer_one(self) -> bool:
        """False at EOF."""
        try:
            data, ancdata, _flags, _addr = self._sock.recvmsg(
                MAX_REQUEST, socket.CMSG_SPACE(_FDS_PER_REQUEST * 4)
            )
        except ConnectionResetError:
            return False
        fds = _received_fds(ancdata)
        if not data:
            _close_all(fds)
            return False
        try:
            if len(fds) != _FDS_PER_REQUEST:
                raise ValueError(f"fork request with {len(fds)} fds, not {_FDS_PER_REQUEST}")
            request = decode_request(data)
            for type_name in request.preload:
                self._preload(type_name)
            pid, pidfd = self._fork(request, status_fd=fds[0], exit_fd=fds[1])
        except Exception as e:
            _close_all(fds)
            self._reply({"error": f"{type(e).__name__}: {e}"})
            return True
        os.close(fds[0])  # the child's now; the exit pipe stays with us until it exits
        self._exit_fds[pid] = fds[1]
        try:
            self._reply({"pid": pid}, pidfd)
        finally:
            os.close(pidfd)
        return True

    def _fork(self, request: ForkRequest, *, status_fd: int, exit_fd: int) -> tuple[int, int]:
        pid = os.fork()
        if pid == 0:
            self._become_child(request, status_fd, exit_fd)
        # Opened before the child can be reaped (this loop reaps it, later), so it
        # names this child and no other process that reuses its pid.
        return pid, os.pidfd_open(pid)

    def _become_child(self, request: ForkRequest, status_fd: int, exit_fd: int) -> None:
        code = 1
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            # Nothing of the server's stays open in a worker: not the daemon's
            # socket (its EOF ends the server), nor other workers' exit pipes.
            _close_all([self._sock.detach(), self._wake_r, self._wake_w, exit_fd])
            _close_all(list(self._exit_fds.values()))
            code = self._run_child(request, status_fd)
        except BaseException as e:  # a child must never return to the loop
            with contextlib.suppress(Exception):
                os.write(2, f"mount worker failed before its job: {e!r}\n".encode())
        finally:
            os._exit(code)

    def _reply(self, message: dict[str, object], fd: int | None = None) -> None:
        ancdata = []
        if fd is not None:
            ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, "little"))]
        with contextlib.suppress(OSError):  # the daemon went away: EOF ends the loop
            self._sock.sendmsg([json.dumps(message).encode()], ancdata)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fd = self._exit_fds.pop(pid, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.write(fd, f"{os.waitstatus_to_exitcode(status)}\n".encode())
                os.close(fd)


def _received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds += [int.from_bytes(data[i : i + 4], "little") for i in range(0, usable, 4)]
    return fds


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
