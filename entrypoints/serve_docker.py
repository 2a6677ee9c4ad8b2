"""`cloudvol serve docker`: the plugin API on a unix socket (or TCP), served by
hypercorn on asyncio.

The listening socket is bound here and given its mode and group before it listens:
Docker cannot connect before the permissions are right. It is then handed to
hypercorn (as `fd://`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field

import anyio
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from loguru import logger

from adapters.mounting.live_workers import volumes_with_live_workers
from adapters.systemd.notify import SystemdNotifier
from adapters.unix_socket import SocketPathTaken, bind_unix_socket
from application.volume_service import VolumeService
from entrypoints.daemon_container import DaemonContainer
from entrypoints.operate_daemon import serve_operations, uploads_left

PLUGIN_NAME = "cloudvol"
SOCKET_MODE = 0o660
_SYSTEMD_FIRST_FD = 3
UPLOAD_REPORT_INTERVAL = 5.0  # seconds between log lines while uploads finish at stop


class StartupError(Exception):
    """The daemon cannot start (socket in use, bad address...)."""


@dataclass(frozen=True)
class ServeSettings:
    base_dir: str
    cache_dir: str
    socket_addr: str = ""  # "" = /run/docker/plugins/cloudvol.sock
    socket_gid: int = field(default_factory=os.getgid)
    allow_remote_api: bool = False  # a TCP --socket-addr may be other than loopback
    no_spec: bool = False
    forget_state: bool = False
    log_level: str = "WARNING"
    log_file: str | None = None
    daemon_defaults: dict[str, str] = field(default_factory=dict)
    config_path: str | None = None  # rclone-format file of named remotes
    # Operating the daemon (entrypoints.operate_daemon): "" = <cache-dir>/admin.sock
    admin_socket: str = ""
    metrics_addr: str = ""  # HOST:PORT, "" = no metrics
    metrics_allow_remote: bool = False
    version: str = "unknown"
    plugins_run_dir: str = "/run/docker/plugins"
    spec_dir: str = "/etc/docker/plugins"

    @property
    def default_socket_path(self) -> str:
        return os.path.join(self.plugins_run_dir, f"{PLUGIN_NAME}.sock")


@dataclass
class Listener:
    sock: socket.socket
    description: str
    remove_at_exit: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.sock.close()
        for path in self.remove_at_exit:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def make_container(settings: ServeSettings) -> DaemonContainer:
    container = DaemonContainer()
    container.config.from_dict(
        {
            "base_dir": settings.base_dir,
            "cache_dir": settings.cache_dir,
            "daemon_defaults": dict(settings.daemon_defaults),
            "log_level": settings.log_level,
            "log_file": settings.log_file,
            "forget_state": settings.forget_state,
            "config_path": settings.config_path,
            "admin_socket": settings.admin_socket or None,
            "socket_description": settings.socket_addr or settings.default_socket_path,
            "metrics_addr": settings.metrics_addr or None,
            "version": settings.version,
        }
    )
    return container


def bind_plugin_socket(path: str, gid: int) -> socket.socket:
    """The plugin socket at `path`, bound (not listening), mode 0660, group `gid`."""
    try:
        return bind_unix_socket(path, mode=SOCKET_MODE, gid=gid)
    except SocketPathTaken as exc:
        raise StartupError(str(exc)) from None


def parse_tcp_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise StartupError(f"--socket-addr {addr!r} is neither an absolute path nor host:port")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback one; "" (every interface) is not."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass  # a host name
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # binding will fail with the real cause
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _systemd_socket() -> socket.socket | None:
    # Socket activation: systemd passes the listening socket as fd 3.
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    if int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    return socket.socket(fileno=_SYSTEMD_FIRST_FD)


def open_listener(settings: ServeSettings) -> Listener:
    activated = None if settings.socket_addr else _systemd_socket()
    if activated is not None:
        return Listener(activated, "the socket passed by systemd")
    addr = settings.socket_addr or settings.default_socket_path
    if addr.startswith("/"):
        sock = bind_plugin_socket(addr, settings.socket_gid)
        return Listener(sock, f"unix:{addr}", remove_at_exit=[addr])
    host, port = parse_tcp_addr(addr)
    if not is_loopback(host):
        if not settings.allow_remote_api:
            raise StartupError(
                f"--socket-addr {addr!r} is not a loopback address: whoever reaches the "
                "plugin API can mount any path and key file as root; give "
                "--allow-remote-api to listen there anyway"
            )
        logger.warning(
            "the plugin API listens on {}, beyond this host's loopback: anyone who reaches "
            "it has root's power over the host's files (--allow-remote-api)",
            addr,
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {addr}: {exc}") from exc
    actual_port = sock.getsockname()[1]
    listener = Listener(sock, f"tcp://{host}:{actual_port}")
    if not settings.no_spec:
        spec_path = os.path.join(settings.spec_dir, f"{PLUGIN_NAME}.spec")
        os.makedirs(settings.spec_dir, mode=0o755, exist_ok=True)
        with open(spec_path, "w") as f:
            f.write(f"tcp://{host or 'localhost'}:{actual_port}\n")
        listener.remove_at_exit.append(spec_path)
    return listener


async def _watch_signals(stop: anyio.Event, service: VolumeService) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                await service.forget_dir_caches()
                continue
            logger.info("{} received: shutting down", signal.Signals(signum).name)
            stop.set()
            return


def _hypercorn_config(listener: Listener) -> HypercornConfig:
    config = HypercornConfig()
    # hypercorn takes ownership of the fd it is given; it gets a duplicate so that
    # closing both sides at exit cannot close some other file.
    config.bind = [f"fd://{os.dup(listener.sock.fileno())}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def serve_docker(
    settings: ServeSettings,
    *,
    container: DaemonContainer | None = None,
    stop: anyio.Event | None = None,
    notifier: SystemdNotifier | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set), then unmount everything and
    save the state without mount IDs. Volumes are loaded before serving; volumes
    that had mount IDs are remounted while serving, and calls about them wait
    for that, so one slow remote does not keep Docker from reaching the daemon.
    Under systemd (Type=notify), READY=1 is sent once they are, and a stop waits
    for the volumes' last uploads, reported with STATUS=."""
    container = container or make_container(settings)
    stop = stop or anyio.Event()
    notifier = notifier or SystemdNotifier()
    service = container.volume_service()
    _start_workers_parent(container)
    app = container.app()
    listener = open_listener(settings)
    try:
        await service.load_state()
    except BaseException:
        # Not service.shutdown(): saving now would overwrite the unread state file.
        listener.close()
        raise
    try:
        # Listening before hypercorn starts: Docker's first calls wait in the queue.
        listener.sock.listen()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, stop, service)
            tg.start_soon(_restore_then_ready, service, notifier, listener.description)
            tg.start_soon(serve_operations, container, settings, stop.wait)  # status, rc, metrics
            logger.info("serving the Docker volume plugin API on {}", listener.description)
            # FastAPI is an ASGI app; its type hints just differ from hypercorn's.
            await serve(app, _hypercorn_config(listener), shutdown_trigger=stop.wait)  # type: ignore[arg-type]
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            notifier.stopping("unmounting every volume")
            try:
                await service.shutdown()
            finally:
                listener.close()
            if notifier.enabled:
                await _wait_for_last_uploads(settings.cache_dir, notifier)
    logger.info("stopped")


def _start_workers_parent(container: DaemonContainer) -> None:
    """The fork server imports the worker's stacks while the daemon loads its
    state, so the first Mount (or restored mount) does not wait for them. It exits
    when this process does (EOF on its socket), crash or not."""
    from adapters.mounting.manager import WorkerMountManager

    manager = container.mount_manager()
    if isinstance(manager, WorkerMountManager):
        manager.start()


async def _restore_then_ready(
    service: VolumeService, notifier: SystemdNotifier, description: str
) -> None:
    await service.restore_mounts()
    notifier.ready(f"serving on {description}")


async def _wait_for_last_uploads(cache_dir: str, notifier: SystemdNotifier) -> None:
    """Under systemd, whose TimeoutStopSec bounds the wait: stay until every unmounted
    worker has uploaded its volume's last changes, so that a stop before a shutdown
    leaves nothing behind in the cache."""
    last_report = -UPLOAD_REPORT_INTERVAL
    while volumes := await anyio.to_thread.run_sync(volumes_with_live_workers, cache_dir):
        status = f"waiting for the last uploads of {len(volumes)} volume(s): {', '.join(volumes)}"
        notifier.status(status)
        if time.monotonic() - last_report >= UPLOAD_REPORT_INTERVAL:
            logger.info("{}; left to upload: {}", status, await uploads_left(cache_dir, volumes))
            last_report = time.monotonic()
        await anyio.sleep(0.5)
