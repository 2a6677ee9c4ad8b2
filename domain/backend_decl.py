"""The shape of a backend's option declarations (the tables are in
`domain/backend_tables/`), the helpers the tables are written with, and the reasons
shared by several backends for accepting an option that changes nothing here."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import OptionError
from domain.options import NOT_YET, SUPPORTED
from domain.values import ValueType

BackendValue = str | int | float | bool

NO_TERMINAL = "meaningless for a volume plugin (there is no terminal to ask on)"
NO_SERVER_COMMANDS = "cloudvol runs no commands on the SFTP server"
NO_BUCKET_CREATION = "only used when creating a bucket, which cloudvol never does"
DESCRIPTION = "a note for people; it changes nothing"


@dataclass(frozen=True)
class BackendOptionDecl:
    name: str  # rclone's backend option name, with underscores
    type: ValueType  # BOOL, INT, SIZE, DURATION, STRING or TRISTATE
    default: BackendValue | None  # None: no default (required, or absent unless given)
    help: str
    secret: bool = False  # never log or show the value
    obscured: bool = False  # given rclone-obscured (`rclone obscure`); the adapter reveals it
    required: bool = False
    support: str = SUPPORTED
    unused: str = ""  # accepted but nothing here acts on it; says why
    choices: tuple[str, ...] = ()  # the accepted values (any case), in canonical spelling

    @property
    def is_supported(self) -> bool:
        return self.support == SUPPORTED

    def label(self, backend_type: str) -> str:
        return f"{backend_type}-{self.name.replace('_', '-')}"

    def is_default_value(self, raw: str) -> bool:
        """Whether `raw` means the default (a not-yet option given so changes nothing)."""
        try:
            value = self.type.parse(self.name, raw)
        except OptionError:
            return False
        if self.type is ValueType.STRING and self.default is None:
            return value == ""
        return value == self.default

    def parse(self, backend_type: str, raw: str, shown_as: str = "") -> BackendValue:
        """Typed value of `raw`; `shown_as` is the key as the user wrote it."""
        label = shown_as or self.label(backend_type)
        if not self.is_supported:
            raise OptionError(f"{label}: {self.support}")
        value = self.type.parse(label, raw)
        assert isinstance(value, str | int | float | bool)  # backend options are scalars
        if self.choices:
            return self._choose(label, str(value))
        return value

    def _choose(self, label: str, value: str) -> str:
        for choice in self.choices:
            if choice.lower() == value.lower():
                return choice
        raise OptionError(
            f'{label}: unknown value "{value}" (use one of {", ".join(self.choices)})'
        )


@dataclass(frozen=True)
class BackendDecl:
    type: str
    options: tuple[BackendOptionDecl, ...]
    # The local backend resolves a relative root against the daemon's cwd: refuse it.
    root_must_be_absolute: bool = False
    # The path starts with the bucket ("bucket/dir"): it is required, and a
    # leading "/" means nothing.
    bucket_in_path: bool = False
    # Not declared here: every `<type>-<option>` is kept as raw text for the adapter.
    passthrough: bool = False
    # Options whose values are remote strings of other remotes (crypt's `remote`,
    # union's `upstreams`): config-file names in them are resolved when the
    # volume's options are parsed (domain/wrapped_remotes.py).
    remote_options: tuple[str, ...] = ()

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
            if decl.is_supported and not decl.unused and decl.default is not None
        }


def not_yet(
    name: str, type_: ValueType, default: BackendValue | None, help_: str
) -> BackendOptionDecl:
    return BackendOptionDecl(name, type_, default, help_, support=NOT_YET)


def unused(
    name: str, type_: ValueType, default: BackendValue, help_: str, why: str
) -> BackendOptionDecl:
    return BackendOptionDecl(name, type_, default, help_, unused=why)


BOOL, INT, SIZE, DURATION, STRING, TRISTATE = (
    ValueType.BOOL,
    ValueType.INT,
    ValueType.SIZE,
    ValueType.DURATION,
    ValueType.STRING,
    ValueType.TRISTATE,
)

# rclone's buffer-pool options, on the backends that upload in blocks (S3, Azure).
MEMORY_POOL = (
    unused(
        "memory_pool_flush_time",
        DURATION,
        60.0,
        "How often rclone's buffer pool is flushed",
        "cloudvol keeps no buffer pool",
    ),
    unused(
        "memory_pool_use_mmap",
        BOOL,
        False,
        "Whether rclone's buffer pool uses mmap",
        "cloudvol keeps no buffer pool",
    ),
)

NO_SERVER_SIDE_COPY = "cloudvol never copies between remotes server-side"
NO_PACER = "cloudvol paces no requests"
NO_FREE_SPACE = "cloudvol's storages report no free space, so no upstream is ruled out for it"
NO_CONNECTION_POOL = "each cloudvol volume keeps its own connections"

MiB = 1024 * 1024

# Every backend takes rclone's `description`, which changes nothing.
DESCRIPTION_OPTION = unused("description", STRING, "", "Description of the remote", DESCRIPTION)


def server_login(
    service: str, port: int, password_help: str = "Password, rclone-obscured"
) -> tuple[BackendOptionDecl, ...]:
    """host, user, port and pass of a backend that logs in to a server (SFTP, FTP,
    SMB): the same four options, in rclone's order."""
    return (
        BackendOptionDecl("host", STRING, None, f"{service} server to connect to", required=True),
        BackendOptionDecl("user", STRING, "", f"{service} user name (empty: the daemon's user)"),
        BackendOptionDecl("port", INT, port, f"{service} port"),
        BackendOptionDecl("pass", STRING, "", password_help, secret=True, obscured=True),
    )
