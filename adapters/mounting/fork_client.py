"""The daemon's side of the fork server (see `fork_server` for the protocol).

`ForkServer` starts the server (`python -m entrypoints.mount_worker --fork-server`:
a worker's command line, as its children show it), asks it for workers, and
starts a new one when it is gone: a watcher thread notices its exit at once and
starts the next, so the next Mount does not wait for its imports (unless two in a
row died within seconds of their start: no restart loop); a request that finds it
dead starts one too. Requests are serialised: a fork costs milliseconds.

`ForkedWorker` is a worker forked for this daemon: not its child, so it is
watched through a pidfd (signals go through it as well, never to a pid that
may have been reused), and its exit code comes from its exit pipe."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from loguru import logger

from adapters.mounting.fork_server import MAX_REQUEST, encode_request

# The directory holding domain/, application/, adapters/ and entrypoints/: the
# server imports them from there whatever the daemon's working directory is.
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
_SERVER_ARGV = ("-m", "entrypoints.mount_worker", "--fork-server")
_EXIT_CODE_WAIT = 2.0  # after the pidfd says exited, for the server to reap it
_SERVER_STOP_WAIT = 5.0
# A server that dies this soon after its start twice in a row is not restarted by
# the watcher (a broken install would fail the same way, in a loop): the next
# Mount starts one, and reports its failure.
_QUICK_DEATH = 10.0


class ForkServerError(OSError):
    """The fork server could not fork a worker."""


class ForkedWorker:
    """The subset of `subprocess.Popen` the manager uses, for a forked worker.
    Its pidfd is closed only once the exit code is known; the fds are touched
    with the lock held, so no signal can go to a reused descriptor."""

    def __init__(self, pid: int, pidfd: int, exit_fd: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._exit_fd = exit_fd
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        """Its exit code once it has exited (-1 when the server that forked it
        was gone and could not say), else None."""
        with self._lock:
            if self.returncode is None and _readable(self._pidfd, 0):
                self._read_exit_code(0)
            return self.returncode

    def wait(self) -> int:
        with self._lock:
            if self.returncode is not None:
                return self.returncode
            pidfd = os.dup(self._pidfd)  # ours to poll on, whoever closes the other
        try:
            _readable(pidfd, None)
        finally:
            os.close(pidfd)
        with self._lock:
            if self.returncode is None:
                self._read_exit_code(_EXIT_CODE_WAIT)
            assert self.returncode is not None
            return self.returncode

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, signum: int) -> None:
        with self._lock:
            if self.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._pidfd, signum)

    def _read_exit_code(self, within: float) -> None:
        # The process has exited: the server writes the code when it reaps it,
        # or the pipe ends without one (the server was gone). With `within` 0 and
        # nothing there yet, the code stays unknown for now.
        if not _readable(self._exit_fd, within):
            if within:
                self._finish(-1)
            return
        try:
            data = os.read(self._exit_fd, 64)
        except OSError:
            data = b""
        text = data.decode(errors="replace").strip()
        self._finish(int(text) if text.lstrip("-").isdigit() else -1)

    def _finish(self, code: int) -> None:
        self.returncode = code
        os.close(self._exit_fd)
        os.close(self._pidfd)
        self._exit_fd = self._pidfd = -1


class ForkServer:
    def __init__(self, log_level: str, log_file: str | None = None) -> None:
        self._log_args = ["--log-level", log_level]
        if log_file:
            self._log_args += ["--log-file", log_file]  # the daemon's: one log for both
        self._lock = threading.Lock()  # one request at a time; guards the fields below
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._closed = False
        self._quick_deaths = 0  # servers in a row that died soon after their start

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the server now, so that its imports are done by the first Mount."""
        with self._lock:
            if not self._closed:
                self._ensure_running()

    def spawn(
        self, job: bytes, preload: tuple[str, ...], status_fd: int, within: float
    ) -> ForkedWorker:
        """A new worker running `job`, reporting its readiness on `status_fd` (the
        caller keeps its own copy). Blocking: call it from a thread. A server that
        has not answered `within` seconds (counted from the call, including the
        wait for another request) is stopped, and ForkServerError raised."""
        deadline = time.monotonic() + within
        if not self._lock.acquire(timeout=max(within, 0.0)):
            raise ForkServerError(f"the fork server was busy for {within:g} s")
        try:
            if self._closed:
                raise ForkServerError("the daemon is stopping: no new mount workers")
            exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
            try:
                try:
                    reply, pidfd = self._request_of_a_live_server(
                        job, preload, status_fd, exit_w, deadline
                    )
                except TimeoutError:
                    self._stop_process(kill=True)  # hung, or answering late: unknown
                    raise ForkServerError(
                        f"the fork server did not answer within {within:g} s"
                    ) from None
            except BaseException:
                os.close(exit_r)
                raise
            finally:
                os.close(exit_w)
        finally:
            self._lock.release()
        pid = reply.get("pid")
        if not isinstance(pid, int) or pidfd is None:
            os.close(exit_r)
            if pidfd is not None:
                os.close(pidfd)
            raise ForkServerError(f"the fork server could not start a worker: {reply.get('error')}")
        return ForkedWorker(pid, pidfd, exit_r)

    def close(self) -> None:
        """Stop the server (it exits at EOF); forked workers go on."""
        with self._lock:
            self._closed = True
            self._stop_process()

    # --- with the lock held ----------------------------------------------------

    def _request_of_a_live_server(
        self, job: bytes, preload: tuple[str, ...], status_fd: int, exit_fd: int, deadline: float
    ) -> tuple[dict[str, object], int | None]:
        try:
            return self._request(job, preload, status_fd, exit_fd, deadline)
        except TimeoutError:
            raise
        except (OSError, ValueError) as e:
            # It died since the last request (or during this one): once more, with
            # a new server.
            logger.warning("the mount workers' fork server failed ({}): restarting it", e)
            self._stop_process()
            return self._request(job, preload, status_fd, exit_fd, deadline)

    def _request(
        self, job: bytes, preload: tuple[str, ...], status_fd: int, exit_fd: int, deadline: float
    ) -> tuple[dict[str, object], int | None]:
        sock = self._ensure_running()
        fds = status_fd.to_bytes(4, "little") + exit_fd.to_bytes(4, "little")
        # A server still importing (just started on a loaded host) answers late,
        # a hung one never: the Mount waiting on it must not hang with it.
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.sendmsg([encode_request(job, preload)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        data, ancdata, _flags, _addr = sock.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(4))
        pidfd = None
        for level, kind, fd_data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS and len(fd_data) >= 4:
                pidfd = int.from_bytes(fd_data[:4], "little")
        if not data:
            raise ConnectionResetError("the fork server closed its socket")
        reply = json.loads(data)
        if not isinstance(reply, dict):
            raise ValueError("the fork server's reply is not a JSON object")
        return reply, pidfd

    def _ensure_running(self) -> socket.socket:
        if self._sock is not None and self._process is not None and self._process.poll() is None:
            return self._sock
        if self._process is not None:
            logger.warning(
                "the mount workers' fork server {} exited ({}): starting a new one",
                self._process.pid,
                self._process.returncode,
            )
            self._stop_process()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    *_SERVER_ARGV,
                    *("--socket-fd", str(theirs.fileno()), *self._log_args),
                ],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                # Its own session: a terminal's Ctrl-C meant for the daemon does not
                # reach it (it exits at the daemon's EOF), nor its workers.
                start_new_session=True,
                cwd="/",
                env=_server_env(),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._process, self._sock = process, ours
        logger.info("started the mount workers' fork server {}", process.pid)
        threading.Thread(
            target=self._watch, args=(process,), name="fork-server-watch", daemon=True
        ).start()
        return ours

    def _stop_process(self, *, kill: bool = False) -> None:
        process, sock = self._process, self._sock
        self._process = self._sock = None
        if sock is not None:
            sock.close()  # EOF: the server exits
        if process is not None:
            try:
                if kill:
                    process.kill()
                process.wait(_SERVER_STOP_WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _watch(self, process: subprocess.Popen[bytes]) -> None:
        started = time.monotonic()
        code = process.wait()
        with self._lock:
            if self._process is not process or self._closed:
                return  # stopped on purpose
            lived = time.monotonic() - started
            self._quick_deaths = self._quick_deaths + 1 if lived < _QUICK_DEATH else 0
            if self._quick_deaths >= 2:
                logger.error(
                    "the mount workers' fork server {} exited {:.1f} s after its start "
                    "(exit code {}), as the one before it; the next Mount starts a new one",
                    process.pid,
                    lived,
                    code,
                )
                return
            logger.error(
                "the mount workers' fork server {} died (exit code {}): starting a new one",
                process.pid,
                code,
            )
            self._stop_process()
            with contextlib.suppress(OSError):
                self._ensure_running()


def _readable(fd: int, timeout: float | None) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else int(timeout * 1000)))


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PROJECT_ROOT + (os.pathsep + path if path else "")
    return env
