"""Opening one SSH connection for the sftp backend: credentials, host keys,
algorithms, and every way connecting fails as a `RemoteUnavailable` that says why."""

from __future__ import annotations

import asyncio
import errno
import os

import asyncssh
from loguru import logger

from adapters.storage.sftp_options import SftpOptions
from domain.errors import RemoteUnavailable

# Keepalives sent in a silence before the connection is given up: the idle
# timeout is split in this many + 1 intervals (see `keepalive_interval`).
_KEEPALIVES_UNANSWERED = 2
# AES-GCM first: OpenSSL's AES-NI path is several times faster than the
# ChaCha20-Poly1305 composition asyncssh builds (its default first choice).
_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
    "aes192-ctr",
)
_WINDOW = 8 * 1024 * 1024  # per-channel SSH window: room for many requests in flight


def server_label(options: SftpOptions) -> str:
    """How messages name the server: `sftp host:port`."""
    return f"sftp {options.host}:{options.port}"


def _load_credentials(
    options: SftpOptions,
) -> tuple[list[asyncssh.SSHKey] | None, str | None]:
    """The client key (if any) and the known_hosts path (None: not checked).

    Blocking (file reads, and the bcrypt KDF of an encrypted key): run in a thread.
    """
    o, where = options, server_label(options)
    client_keys: list[asyncssh.SSHKey] | None = None
    passphrase = o.key_file_pass or None
    try:
        if o.key_pem:
            # rclone takes the PEM on one line with "\n" for line ends.
            pem = o.key_pem.replace("\\n", "\n")
            client_keys = [asyncssh.import_private_key(pem, passphrase)]
        elif o.key_file:
            key_path = os.path.expanduser(os.path.expandvars(o.key_file))
            client_keys = [asyncssh.read_private_key(key_path, passphrase)]
    except FileNotFoundError:
        raise RemoteUnavailable(f"{where}: key_file {o.key_file}: no such file") from None
    except (OSError, asyncssh.KeyImportError, ValueError) as exc:
        which = "key_pem" if o.key_pem else f"key_file {o.key_file}"
        raise RemoteUnavailable(f"{where}: cannot load {which}: {exc}") from None

    known_hosts: str | None = None
    if o.known_hosts_file:
        known_hosts = os.path.expanduser(os.path.expandvars(o.known_hosts_file))
        if not os.path.isfile(known_hosts):
            raise RemoteUnavailable(f"{where}: known_hosts_file {o.known_hosts_file}: no such file")
    return client_keys, known_hosts


def keepalive_interval(io_idle_timeout: float | None) -> float:
    """How often a silent connection is probed, so that asyncssh drops it after
    `io_idle_timeout` seconds of hearing nothing (rclone's --timeout).

    asyncssh's keepalive timer restarts at every packet received; each time it
    fires it sends a keepalive, and once `_KEEPALIVES_UNANSWERED` are pending
    the next firing closes the connection, failing every request on it. So a
    frozen server is detected after (unanswered + 1) intervals of silence, while a
    slow transfer that keeps receiving data is never cut. 0: no keepalives."""
    if io_idle_timeout is None:
        return 0.0
    return io_idle_timeout / (_KEEPALIVES_UNANSWERED + 1)


async def connect(
    options: SftpOptions, within: float | None, io_idle_timeout: float | None
) -> asyncssh.SSHClientConnection:
    """A new SSH connection to the server `options` name, authenticated; the
    attempt fails after `within` seconds (None: never), and the connection is
    dropped once the server stays silent for `io_idle_timeout` seconds."""
    o, where = options, server_label(options)
    client_keys, known_hosts = await asyncio.to_thread(_load_credentials, o)
    explicit_auth = client_keys is not None or bool(o.password)
    logger.debug("{}: connecting as {}", where, o.user)
    try:
        async with asyncio.timeout(within):
            conn = await asyncssh.connect(
                o.host,
                o.port,
                username=o.user,
                password=o.password or None,
                # With a key or password given, use only those, as rclone does;
                # otherwise fall back to the agent and ~/.ssh keys like ssh.
                client_keys=client_keys if explicit_auth else (),
                agent_path=None if explicit_auth else (),
                known_hosts=known_hosts,
                config=None,  # ~/.ssh/config must not change a volume's behaviour
                connect_timeout=within,
                keepalive_interval=keepalive_interval(io_idle_timeout),
                keepalive_count_max=_KEEPALIVES_UNANSWERED,
                encryption_algs=_CIPHERS,
                compression_algs=None,
                window=_WINDOW,
            )
    except asyncssh.PermissionDenied:
        raise RemoteUnavailable(f"{where}: authentication failed for user {o.user}") from None
    except asyncssh.HostKeyNotVerifiable as exc:
        raise RemoteUnavailable(
            f"{where}: host key refused by known_hosts_file {o.known_hosts_file}: {exc.reason}"
        ) from None
    except asyncssh.DisconnectError as exc:
        raise RemoteUnavailable(f"{where}: {exc.reason}") from None
    except TimeoutError:
        raise RemoteUnavailable(f"{where}: no answer within {within:g}s (--contimeout)") from None
    except ConnectionRefusedError:
        raise RemoteUnavailable(f"{where}: connection refused") from None
    except OSError as exc:
        text = str(exc)
        # asyncio folds one error per resolved address into a plain OSError.
        if exc.errno is None and f"[Errno {errno.ECONNREFUSED}]" in text:
            raise RemoteUnavailable(f"{where}: connection refused") from None
        raise RemoteUnavailable(f"{where}: {exc.strerror or text}") from None
    logger.debug("{}: connected", where)
    return conn
