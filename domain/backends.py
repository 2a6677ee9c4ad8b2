"""Backend option declarations, per backend type.

Names are rclone's backend option names (underscores: `key_file`); from Docker they
arrive as `-o <type>-<name>` (`sftp-key-file`) or inline in a connection string
(`:sftp,key_file=...:`). As in domain/options.py, an option declared but not
implemented is refused when given; to implement one, drop its `support=`.

To add a backend (s3...), add a `BackendDecl` to `_BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domain.errors import OptionError
from domain.options import NOT_YET, ONLY_WINDOWS, SUPPORTED
from domain.values import ValueType

BackendValue = str | int | float | bool

NO_TERMINAL = "meaningless for a volume plugin (there is no terminal to ask on)"


@dataclass(frozen=True)
class BackendOptionDecl:
    name: str  # rclone's backend option name, with underscores
    type: ValueType  # BOOL, INT, SIZE, DURATION or STRING
    default: BackendValue | None  # None: no default (required, or absent unless given)
    help: str
    secret: bool = False  # never log or show the value
    obscured: bool = False  # given rclone-obscured (`rclone obscure`); the adapter reveals it
    required: bool = False
    support: str = SUPPORTED

    @property
    def is_supported(self) -> bool:
        return self.support == SUPPORTED

    def parse(self, backend_type: str, raw: str, shown_as: str = "") -> BackendValue:
        """Typed value of `raw`; `shown_as` is the key as the user wrote it."""
        label = shown_as or f"{backend_type}-{self.name.replace('_', '-')}"
        if not self.is_supported:
            raise OptionError(f"{label}: {self.support}")
        value = self.type.parse(label, raw)
        assert isinstance(value, str | int | float | bool)  # backend options are scalars
        return value


@dataclass(frozen=True)
class BackendDecl:
    type: str
    options: tuple[BackendOptionDecl, ...]
    # The local backend resolves a relative root against the daemon's cwd: refuse it.
    root_must_be_absolute: bool = False

    def option(self, name: str) -> BackendOptionDecl | None:
        """The option called `name` ("key_file"; "key-file" and any case also match)."""
        wanted = name.strip().lower().replace("-", "_")
        for decl in self.options:
            if decl.name == wanted:
                return decl
        return None

    def defaults(self) -> dict[str, BackendValue]:
        """The defaults of supported options, so adapters can rely on their keys."""
        return {
            decl.name: decl.default
            for decl in self.options
            if decl.is_supported and decl.default is not None
        }


def _ny(name: str, type_: ValueType, default: BackendValue, help_: str) -> BackendOptionDecl:
    return BackendOptionDecl(name, type_, default, help_, support=NOT_YET)


_B, _I, _S, _D, _STR = (
    ValueType.BOOL,
    ValueType.INT,
    ValueType.SIZE,
    ValueType.DURATION,
    ValueType.STRING,
)

_SFTP = BackendDecl(
    "sftp",
    (
        BackendOptionDecl("host", _STR, None, "SSH server to connect to", required=True),
        BackendOptionDecl("user", _STR, "", "SSH user name (empty: the daemon's user)"),
        BackendOptionDecl("port", _I, 22, "SSH port"),
        BackendOptionDecl(
            "pass", _STR, "", "SSH password, rclone-obscured", secret=True, obscured=True
        ),
        BackendOptionDecl(
            "key_pem", _STR, "", "Private key in PEM form, newlines as \\n", secret=True
        ),
        BackendOptionDecl("key_file", _STR, "", "Path of a private key file"),
        BackendOptionDecl(
            "key_file_pass",
            _STR,
            "",
            "Passphrase of the key file, rclone-obscured",
            secret=True,
            obscured=True,
        ),
        BackendOptionDecl(
            "known_hosts_file",
            _STR,
            "",
            "known_hosts file to check the server key against (empty: not checked)",
        ),
        BackendOptionDecl("set_modtime", _B, True, "Set modification times on the server"),
        BackendOptionDecl("concurrency", _I, 64, "Outstanding requests per file"),
        BackendOptionDecl("chunk_size", _S, 32 * 1024, "Size of each SFTP read/write request"),
        BackendOptionDecl(
            "idle_timeout", _D, 60.0, "Close idle connections after this (0: keep them)"
        ),
        _ny("pubkey", _STR, "", "Public key or certificate for key authentication"),
        _ny("pubkey_file", _STR, "", "Path of a public key or certificate file"),
        _ny("key_use_agent", _B, False, "Use only keys from ssh-agent"),
        _ny("use_insecure_cipher", _B, False, "Allow weak ciphers and key exchanges"),
        _ny("disable_hashcheck", _B, False, "Do not run remote hash commands"),
        BackendOptionDecl(
            "ask_password", _B, False, "Ask for a password interactively", support=NO_TERMINAL
        ),
        _ny("path_override", _STR, "", "Path to use for remote hash commands"),
        _ny("shell_type", _STR, "", "Kind of shell on the server (unix, cmd, powershell, none)"),
        _ny("md5sum_command", _STR, "", "Command that prints MD5 sums on the server"),
        _ny("sha1sum_command", _STR, "", "Command that prints SHA-1 sums on the server"),
        _ny("skip_links", _B, False, "Skip symlinks and other special files"),
        _ny("subsystem", _STR, "sftp", "SSH subsystem to start"),
        _ny("server_command", _STR, "", "Command to run as the SFTP server instead"),
        _ny("use_fstat", _B, False, "Use fstat instead of stat on open files"),
        _ny("disable_concurrent_reads", _B, False, "Read each file with one request at a time"),
        _ny("disable_concurrent_writes", _B, False, "Write each file with one request at a time"),
        _ny("connections", _I, 0, "Most connections to the server (0: no limit)"),
        _ny("set_env", _STR, "", "Environment variables for the server session"),
        _ny("ciphers", _STR, "", "Ciphers to offer, in order of preference"),
        _ny("key_exchange", _STR, "", "Key exchange algorithms to offer"),
        _ny("macs", _STR, "", "MAC algorithms to offer"),
        _ny("host_key_algorithms", _STR, "", "Host key algorithms to offer"),
        _ny("ssh", _STR, "", "External ssh command to use instead of the built-in client"),
        _ny("socks_proxy", _STR, "", "SOCKS5 proxy to connect through"),
        _ny("copy_is_hardlink", _B, False, "Make server-side copies as hard links"),
    ),
)

_LOCAL = BackendDecl(
    "local",
    (
        BackendOptionDecl(
            "nounc", _B, False, "Disable long path names (UNC)", support=ONLY_WINDOWS
        ),
        _ny("copy_links", _B, False, "Follow symlinks and show what they point to"),
        _ny("links", _B, False, "Show symlinks as .rclonelink files"),
        _ny("skip_links", _B, False, "Do not warn about skipped symlinks"),
        _ny("zero_size_links", _B, False, "Report symlink sizes as 0"),
        _ny("unicode_normalization", _B, False, "Normalise file names to Unicode NFC"),
        _ny("no_check_updated", _B, False, "Do not check whether files change while read"),
        _ny("one_file_system", _B, False, "Do not cross filesystem boundaries"),
        _ny("case_sensitive", _B, False, "Report the filesystem as case sensitive"),
        _ny("case_insensitive", _B, False, "Report the filesystem as case insensitive"),
        _ny("no_clone", _B, False, "Do not use reflinks for server-side copies"),
        _ny("no_preallocate", _B, False, "Do not preallocate space for written files"),
        _ny("no_sparse", _B, False, "Do not write sparse files"),
        _ny("no_set_modtime", _B, False, "Do not set modification times"),
        _ny("time_type", _STR, "mtime", "Which file time to show: mtime, atime, btime or ctime"),
        _ny("encoding", _STR, "", "Character encoding of file names"),
    ),
    root_must_be_absolute=True,
)

_BACKENDS: Mapping[str, BackendDecl] = {decl.type: decl for decl in (_LOCAL, _SFTP)}


def backend_types() -> list[str]:
    """The known backend types, sorted (for error messages)."""
    return sorted(_BACKENDS)


def find_backend(backend_type: str) -> BackendDecl:
    try:
        return _BACKENDS[backend_type]
    except KeyError:
        raise OptionError(
            f'unknown backend type "{backend_type}" (known types: {", ".join(backend_types())})'
        ) from None
