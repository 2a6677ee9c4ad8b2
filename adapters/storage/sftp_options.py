"""The sftp backend's options as the SFTP adapter uses them: checked against their
declarations (domain/backends.py), obscured secrets revealed."""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field

from adapters.storage.backend_options import check_backend_options
from adapters.storage.obscure import reveal
from domain.backends import BackendValue
from domain.errors import OptionError


@dataclass(frozen=True)
class SftpOptions:
    """Typed view of the sftp options; names and defaults are their declarations'."""

    host: str
    user: str
    port: int
    password: str = field(repr=False)  # rclone's `pass`, revealed
    key_file: str
    key_pem: str = field(repr=False)
    key_file_pass: str = field(repr=False)  # revealed
    known_hosts_file: str
    set_modtime: bool
    concurrency: int
    chunk_size: int | None  # None: as large as the server advertises
    idle_timeout: float

    @classmethod
    def parse(cls, options: Mapping[str, BackendValue]) -> SftpOptions:
        checked = check_backend_options("sftp", options)
        port = checked.integer("port") or 0
        if not 0 < port < 65536:
            raise OptionError(f"sftp option 'port': {port} is not a TCP port")
        concurrency = checked.integer("concurrency") or 0
        chunk_size = checked.integer("chunk_size") or None
        if concurrency < 1 or (chunk_size is not None and chunk_size < 1):
            raise OptionError("sftp options 'concurrency' and 'chunk_size' must be positive")
        obscured_pass = checked.text("pass")
        obscured_key_pass = checked.text("key_file_pass")
        return cls(
            host=checked.text("host"),
            user=checked.text("user") or getpass.getuser(),
            port=port,
            password=reveal(obscured_pass, "sftp option 'pass'") if obscured_pass else "",
            key_file=checked.text("key_file"),
            key_pem=checked.text("key_pem"),
            key_file_pass=(
                reveal(obscured_key_pass, "sftp option 'key_file_pass'")
                if obscured_key_pass
                else ""
            ),
            known_hosts_file=checked.text("known_hosts_file"),
            set_modtime=checked.flag("set_modtime"),
            concurrency=concurrency,
            chunk_size=chunk_size,
            idle_timeout=checked.number("idle_timeout"),
        )


_RFC_CHUNK = 32 * 1024  # the request payload every SFTP server must accept


def request_size(wanted: int | None, limit: int) -> int:
    """The payload of one read or write request.

    Without `chunk_size`, as large as the server says it accepts (OpenSSH's
    limits@openssh.com: 255 KiB): per request, asyncssh's packet handling costs
    more CPU than the transfer itself, so 8x fewer requests read about 1.6x
    faster on loopback. rclone stays at the 32 KiB the protocol guarantees, as we
    do with a server that advertises no limits. An explicit `chunk_size` is
    honoured, but never above the limit: OpenSSH drops the connection on a
    request over it."""
    if wanted is None:
        return limit if limit > 0 else _RFC_CHUNK
    return min(wanted, limit) if limit > 0 else wanted
