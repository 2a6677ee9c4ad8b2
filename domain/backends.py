"""Backend option declarations, per backend type.

Names are rclone's backend option names (underscores: `key_file`); from Docker they
arrive as `-o <type>-<name>` (`sftp-key-file`), inline in a connection string
(`:sftp,key_file=...:`) or from a config file section. As in domain/options.py, an
option declared but not implemented is refused when given, unless its value is the
default (which changes nothing); to implement one, drop its `support=`.

Some rclone options steer features cloudvol does not have at all (hash commands run
on an SFTP server, bucket creation): they are declared `unused=<why>`, accepted, type
checked, and never reach the adapter. rclone writes several of them into its config
file by itself (sftp's `shell_type`), so refusing them would break existing configs.

Types not declared here are fsspec protocols (`memory`, `http`, ...): the domain
cannot know which are installed or what their parameters are, so their options pass
through as raw text and the storage adapter types them by the filesystem's own
signature (`BackendDecl.passthrough`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from domain.errors import OptionError
from domain.options import NOT_YET, ONLY_WINDOWS, SUPPORTED
from domain.values import ValueType

BackendValue = str | int | float | bool

NO_TERMINAL = "meaningless for a volume plugin (there is no terminal to ask on)"
NO_SERVER_COMMANDS = "cloudvol runs no commands on the SFTP server"
NO_BUCKET_CREATION = "only used when creating a bucket, which cloudvol never does"
DESCRIPTION = "a note for people; it changes nothing"

# A type name as fsspec spells protocols ("memory", "s3a", "arrow_hdfs").
_PROTOCOL_RE = re.compile(r"[a-z][a-z0-9_]*")


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


def _ny(name: str, type_: ValueType, default: BackendValue | None, help_: str) -> BackendOptionDecl:
    return BackendOptionDecl(name, type_, default, help_, support=NOT_YET)


def _unused(
    name: str, type_: ValueType, default: BackendValue, help_: str, why: str
) -> BackendOptionDecl:
    return BackendOptionDecl(name, type_, default, help_, unused=why)


_B, _I, _S, _D, _STR, _TRI = (
    ValueType.BOOL,
    ValueType.INT,
    ValueType.SIZE,
    ValueType.DURATION,
    ValueType.STRING,
    ValueType.TRISTATE,
)

# rclone's buffer-pool options, on the backends that upload in blocks (S3, Azure).
_MEMORY_POOL = (
    _unused(
        "memory_pool_flush_time",
        _D,
        60.0,
        "How often rclone's buffer pool is flushed",
        "cloudvol keeps no buffer pool",
    ),
    _unused(
        "memory_pool_use_mmap",
        _B,
        False,
        "Whether rclone's buffer pool uses mmap",
        "cloudvol keeps no buffer pool",
    ),
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
        BackendOptionDecl(
            "chunk_size",
            _S,
            None,
            "Size of each SFTP read/write request (default: the largest the server"
            " advertises, else 32 KiB)",
        ),
        BackendOptionDecl(
            "idle_timeout", _D, 60.0, "Close idle connections after this (0: keep them)"
        ),
        _ny("pubkey", _STR, "", "Public key or certificate for key authentication"),
        _ny("pubkey_file", _STR, "", "Path of a public key or certificate file"),
        _ny("key_use_agent", _B, False, "Use only keys from ssh-agent"),
        _ny("use_insecure_cipher", _B, False, "Allow weak ciphers and key exchanges"),
        _unused(
            "disable_hashcheck", _B, False, "Do not run remote hash commands", NO_SERVER_COMMANDS
        ),
        BackendOptionDecl(
            "ask_password", _B, False, "Ask for a password interactively", support=NO_TERMINAL
        ),
        _unused(
            "path_override", _STR, "", "Path to use for remote hash commands", NO_SERVER_COMMANDS
        ),
        _unused(
            "shell_type",
            _STR,
            "",
            "Kind of shell on the server (unix, cmd, powershell, none)",
            NO_SERVER_COMMANDS,
        ),
        _unused(
            "md5sum_command",
            _STR,
            "",
            "Command that prints MD5 sums on the server",
            NO_SERVER_COMMANDS,
        ),
        _unused(
            "sha1sum_command",
            _STR,
            "",
            "Command that prints SHA-1 sums on the server",
            NO_SERVER_COMMANDS,
        ),
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
        _unused("description", _STR, "", "Description of the remote", DESCRIPTION),
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
        _unused("description", _STR, "", "Description of the remote", DESCRIPTION),
    ),
    root_must_be_absolute=True,
)

# rclone's provider names; each brings quirks (URL style, listing version).
S3_PROVIDERS = (
    "AWS",
    "Alibaba",
    "ArvanCloud",
    "Ceph",
    "ChinaMobile",
    "Cloudflare",
    "DigitalOcean",
    "Dreamhost",
    "GCS",
    "HuaweiOBS",
    "IBMCOS",
    "IDrive",
    "IONOS",
    "LyveCloud",
    "Leviia",
    "Liara",
    "Linode",
    "Magalu",
    "Minio",
    "Netease",
    "Outscale",
    "Petabox",
    "RackCorp",
    "Rclone",
    "Scaleway",
    "SeaweedFS",
    "Selectel",
    "StackPath",
    "Storj",
    "Synology",
    "TencentCOS",
    "Wasabi",
    "Qiniu",
    "Other",
)

_MiB = 1024 * 1024

_S3 = BackendDecl(
    "s3",
    (
        BackendOptionDecl(
            "provider",
            _STR,
            "",
            "S3 implementation (AWS, Minio, Ceph, Other...); sets its quirks",
            choices=S3_PROVIDERS,
        ),
        BackendOptionDecl(
            "env_auth",
            _B,
            False,
            "Without keys, take credentials from the environment (AWS_* variables, "
            "shared credentials file, instance metadata) instead of going anonymous",
        ),
        BackendOptionDecl("access_key_id", _STR, "", "Access key ID (empty: see env_auth)"),
        BackendOptionDecl("secret_access_key", _STR, "", "Secret access key", secret=True),
        BackendOptionDecl(
            "session_token", _STR, "", "Session token of temporary credentials", secret=True
        ),
        BackendOptionDecl(
            "region", _STR, "", "Region to sign for (empty: found from the bucket on AWS)"
        ),
        BackendOptionDecl("endpoint", _STR, "", "Endpoint of an S3-compatible server (empty: AWS)"),
        _unused("location_constraint", _STR, "", "Region of created buckets", NO_BUCKET_CREATION),
        BackendOptionDecl(
            "acl", _STR, "", "Canned ACL of new objects (empty: the bucket's default)"
        ),
        _unused("bucket_acl", _STR, "", "Canned ACL of created buckets", NO_BUCKET_CREATION),
        BackendOptionDecl("requester_pays", _B, False, "Accept requester-pays charges"),
        BackendOptionDecl(
            "server_side_encryption",
            _STR,
            "",
            "Server-side encryption of new objects (AES256 or aws:kms)",
        ),
        _ny("sse_customer_algorithm", _STR, "", "SSE-C algorithm"),
        BackendOptionDecl("sse_customer_key", _STR, "", "SSE-C key", secret=True, support=NOT_YET),
        BackendOptionDecl(
            "sse_customer_key_base64",
            _STR,
            "",
            "SSE-C key in base64",
            secret=True,
            support=NOT_YET,
        ),
        _ny("sse_customer_key_md5", _STR, "", "MD5 of the SSE-C key"),
        BackendOptionDecl("sse_kms_key_id", _STR, "", "KMS key ID for aws:kms encryption"),
        BackendOptionDecl("storage_class", _STR, "", "Storage class of new objects"),
        _ny("upload_cutoff", _S, 200 * _MiB, "Size below which uploads are a single PUT"),
        BackendOptionDecl(
            "chunk_size",
            _S,
            5 * _MiB,
            "Part size of uploads: smaller files are one PUT, larger ones a "
            "multipart upload streamed as they are written",
        ),
        BackendOptionDecl("max_upload_parts", _I, 10000, "Most parts in one multipart upload"),
        BackendOptionDecl(
            "copy_cutoff",
            _S,
            4999610368,
            "Server-side copies (renames) of larger objects use multipart copy in parts of this size",
        ),
        _unused(
            "disable_checksum",
            _B,
            False,
            "Do not store the MD5 of large uploads in their metadata",
            "cloudvol stores no MD5 in object metadata",
        ),
        BackendOptionDecl(
            "shared_credentials_file", _STR, "", "AWS shared credentials file (env_auth)"
        ),
        BackendOptionDecl("profile", _STR, "", "Profile in the shared credentials file (env_auth)"),
        BackendOptionDecl("upload_concurrency", _I, 4, "Parts of one upload sent at once"),
        BackendOptionDecl(
            "force_path_style",
            _B,
            True,
            "Path-style URLs (host/bucket) instead of virtual-host ones (bucket.host); "
            "providers that need virtual-host style override it, as in rclone",
        ),
        _ny("v2_auth", _B, False, "Sign requests with AWS signature v2"),
        _ny("use_accelerate_endpoint", _B, False, "Use the AWS S3 accelerated endpoint"),
        _ny("leave_parts_on_error", _B, False, "Keep the parts of a failed multipart upload"),
        BackendOptionDecl("list_chunk", _I, 1000, "Keys asked for per listing request"),
        BackendOptionDecl(
            "list_version", _I, 0, "ListObjects version: 1, 2, or 0 for the provider's"
        ),
        _ny("list_url_encode", _TRI, None, "URL-encode listings (unset: the provider's way)"),
        _unused(
            "no_check_bucket",
            _B,
            False,
            "Do not check or create the bucket before uploads",
            NO_BUCKET_CREATION,
        ),
        _unused(
            "no_head",
            _B,
            False,
            "Do not read an object's metadata back after uploading it",
            "cloudvol never reads an object back after uploading it",
        ),
        _ny("no_head_object", _B, False, "Do not read an object's metadata before reading it"),
        _ny("encoding", _STR, "Slash,InvalidUtf8,Dot", "Encoding of object names"),
        *_MEMORY_POOL,
        _unused(
            "disable_http2",
            _B,
            False,
            "Disable HTTP/2",
            "cloudvol's S3 client speaks HTTP/1.1 only",
        ),
        _ny("download_url", _STR, "", "Custom URL to download objects from"),
        _ny("use_multipart_etag", _TRI, None, "Check multipart uploads by their ETag"),
        _ny("use_presigned_request", _B, False, "Upload single parts with presigned requests"),
        _ny("versions", _B, False, "Show old object versions"),
        _ny("version_at", _STR, "off", "Show the objects as they were at this time"),
        _ny("decompress", _B, False, "Decompress gzip-encoded objects when reading"),
        _ny("might_gzip", _TRI, None, "Objects may be gzip-encoded by the server"),
        _ny("no_system_metadata", _B, False, "Neither read nor write system metadata"),
        _unused("description", _STR, "", "Description of the remote", DESCRIPTION),
    ),
    bucket_in_path=True,
)

NO_SERVER_SIDE_COPY = "cloudvol never copies between remotes server-side"
NO_PACER = "cloudvol paces no requests"
NO_FREE_SPACE = "cloudvol's storages report no free space, so no upstream is ruled out for it"
NO_CONNECTION_POOL = "each cloudvol volume keeps its own connections"

CRYPT_NAME_MODES = ("standard", "obfuscate", "off")
CRYPT_NAME_ENCODINGS = ("base32", "base64", "base32768")

_CRYPT = BackendDecl(
    "crypt",
    (
        BackendOptionDecl(
            "remote", _STR, None, "Remote to encrypt into, e.g. myremote:path", required=True
        ),
        BackendOptionDecl(
            "filename_encryption",
            _STR,
            "standard",
            "How file names are encrypted: standard, obfuscate or off",
            choices=CRYPT_NAME_MODES,
        ),
        BackendOptionDecl("directory_name_encryption", _B, True, "Encrypt directory names too"),
        BackendOptionDecl(
            "password",
            _STR,
            None,
            "Password, rclone-obscured",
            secret=True,
            obscured=True,
            required=True,
        ),
        BackendOptionDecl(
            "password2",
            _STR,
            "",
            "Salt password, rclone-obscured (empty: rclone's fixed salt)",
            secret=True,
            obscured=True,
        ),
        BackendOptionDecl(
            "filename_encoding",
            _STR,
            "base32",
            "Encoding of encrypted names: base32, base64 or base32768",
            choices=CRYPT_NAME_ENCODINGS,
        ),
        BackendOptionDecl(
            "no_data_encryption", _B, False, "Encrypt names only, leave contents as they are"
        ),
        BackendOptionDecl(
            "suffix", _STR, ".bin", "Suffix of file names with filename_encryption off"
        ),
        _unused(
            "server_side_across_configs",
            _B,
            False,
            "Allow server-side copies between crypt remotes",
            NO_SERVER_SIDE_COPY,
        ),
        _ny("show_mapping", _B, False, "Log each plain name with its encrypted name"),
        _ny("pass_bad_blocks", _B, False, "Return zeros for chunks that fail authentication"),
        _ny("strict_names", _B, False, "Fail on names that do not decrypt instead of skipping"),
        _unused("description", _STR, "", "Description of the remote", DESCRIPTION),
    ),
    remote_options=("remote",),
)

_ALIAS = BackendDecl(
    "alias",
    (
        BackendOptionDecl(
            "remote", _STR, None, "Remote or path to alias, e.g. myremote:path", required=True
        ),
        _unused("description", _STR, "", "Description of the remote", DESCRIPTION),
    ),
    remote_options=("remote",),
)

UNION_ACTION_POLICIES = ("epall", "all", "epff", "ff")
UNION_CREATE_POLICIES = ("epmfs", "mfs", "epff", "ff")
UNION_SEARCH_POLICIES = ("ff", "epff")

_UNION = BackendDecl(
    "union",
    (
        BackendOptionDecl(
            "upstreams",
            _STR,
            None,
            "Space-separated remotes; a remote may end in :ro, :nc or :writeback",
            required=True,
        ),
        BackendOptionDecl(
            "action_policy",
            _STR,
            "epall",
            "Which upstreams remove, rename and set times act on",
            choices=UNION_ACTION_POLICIES,
        ),
        BackendOptionDecl(
            "create_policy",
            _STR,
            "epmfs",
            "Which upstream new files and directories go to",
            choices=UNION_CREATE_POLICIES,
        ),
        BackendOptionDecl(
            "search_policy",
            _STR,
            "ff",
            "Which upstream a path is read from",
            choices=UNION_SEARCH_POLICIES,
        ),
        _unused(
            "cache_time",
            _I,
            120,
            "Seconds to keep upstreams' free space figures",
            NO_FREE_SPACE,
        ),
        _unused("min_free_space", _S, 1024 * _MiB, "Least free space to create on", NO_FREE_SPACE),
        _unused("description", _STR, "", "Description of the remote", DESCRIPTION),
    ),
    remote_options=("upstreams",),
)

WEBDAV_VENDORS = (
    "fastmail",
    "nextcloud",
    "owncloud",
    "sharepoint",
    "sharepoint-ntlm",
    "rclone",
    "other",
)

_WEBDAV = BackendDecl(
    "webdav",
    (
        BackendOptionDecl("url", _STR, None, "URL of the WebDAV server", required=True),
        BackendOptionDecl(
            "vendor",
            _STR,
            "",
            "Server software (nextcloud, owncloud, rclone, other...): how times are kept",
            choices=WEBDAV_VENDORS,
        ),
        BackendOptionDecl("user", _STR, "", "User name"),
        BackendOptionDecl(
            "pass", _STR, "", "Password, rclone-obscured", secret=True, obscured=True
        ),
        BackendOptionDecl(
            "bearer_token", _STR, "", "Bearer token instead of user and password", secret=True
        ),
        _ny("bearer_token_command", _STR, "", "Command printing a bearer token"),
        _ny("encoding", _STR, "", "Encoding of file names"),
        _ny("headers", _STR, "", "Extra HTTP headers (key,value pairs)"),
        _unused("pacer_min_sleep", _D, 0.01, "Least time between requests", NO_PACER),
        _ny("nextcloud_chunk_size", _S, 10 * _MiB, "Nextcloud upload chunk size"),
        _ny("owncloud_exclude_shares", _B, False, "Leave ownCloud shares out"),
        _ny("owncloud_exclude_mounts", _B, False, "Leave ownCloud mounts out"),
        _ny("unix_socket", _STR, "", "Unix socket to connect to instead of TCP"),
        _ny("auth_redirect", _B, False, "Keep authentication across redirects"),
        _unused("description", _STR, "", "Description of the remote", DESCRIPTION),
    ),
)

_FTP = BackendDecl(
    "ftp",
    (
        BackendOptionDecl("host", _STR, None, "FTP server to connect to", required=True),
        BackendOptionDecl("user", _STR, "", "FTP user name (empty: the daemon's user)"),
        BackendOptionDecl("port", _I, 21, "FTP port"),
        BackendOptionDecl(
            "pass", _STR, "", "Password, rclone-obscured", secret=True, obscured=True
        ),
        BackendOptionDecl(
            "tls",
            _B,
            False,
            "Implicit FTPS (TLS from the start, usually port 990)",
            support=NOT_YET,
        ),
        BackendOptionDecl("explicit_tls", _B, False, "Explicit FTPS (AUTH TLS after connecting)"),
        _ny("concurrency", _I, 0, "Most simultaneous FTP connections (0: no limit)"),
        _ny("no_check_certificate", _B, False, "Do not check the server's TLS certificate"),
        _ny("disable_epsv", _B, False, "Do not use EPSV"),
        _ny("disable_mlsd", _B, False, "Do not use MLSD"),
        _ny("disable_utf8", _B, False, "Do not ask the server for UTF-8"),
        _ny("writing_mdtm", _B, False, "Set times with MDTM instead of MFMT"),
        _ny("force_list_hidden", _B, False, "List hidden files with LIST -a"),
        _unused("idle_timeout", _D, 60.0, "Close idle connections after this", NO_CONNECTION_POOL),
        _unused(
            "close_timeout", _D, 60.0, "Longest wait for a close to answer", NO_CONNECTION_POOL
        ),
        _unused("tls_cache_size", _I, 32, "TLS sessions kept for reuse", NO_CONNECTION_POOL),
        _ny("disable_tls13", _B, False, "Do not use TLS 1.3"),
        _unused(
            "shut_timeout",
            _D,
            60.0,
            "Longest wait for data connections to close",
            NO_CONNECTION_POOL,
        ),
        BackendOptionDecl(
            "ask_password", _B, False, "Ask for a password interactively", support=NO_TERMINAL
        ),
        _ny("socks_proxy", _STR, "", "SOCKS5 proxy to connect through"),
        _ny("encoding", _STR, "", "Encoding of file names"),
        _unused("description", _STR, "", "Description of the remote", DESCRIPTION),
    ),
)

_SMB = BackendDecl(
    "smb",
    (
        BackendOptionDecl("host", _STR, None, "SMB server to connect to", required=True),
        BackendOptionDecl("user", _STR, "", "SMB user name (empty: the daemon's user)"),
        BackendOptionDecl("port", _I, 445, "SMB port"),
        BackendOptionDecl(
            "pass", _STR, "", "Password, rclone-obscured", secret=True, obscured=True
        ),
        BackendOptionDecl("domain", _STR, "WORKGROUP", "Domain name for NTLM authentication"),
        _ny("spn", _STR, "", "Service principal name"),
        _unused("idle_timeout", _D, 60.0, "Close idle connections after this", NO_CONNECTION_POOL),
        _ny("hide_special_share", _B, True, "Hide special shares (print$, IPC$...)"),
        _ny("case_insensitive", _B, True, "Whether the server is case insensitive"),
        _ny("encoding", _STR, "", "Encoding of file names"),
        _unused("description", _STR, "", "Description of the remote", DESCRIPTION),
    ),
    # The share is the path's first segment: the adapter checks.
)

_AZUREBLOB = BackendDecl(
    "azureblob",
    (
        BackendOptionDecl("account", _STR, "", "Storage account name"),
        BackendOptionDecl("key", _STR, "", "Storage account shared key", secret=True),
        BackendOptionDecl("sas_url", _STR, "", "SAS URL of a container", secret=True),
        BackendOptionDecl(
            "endpoint", _STR, "", "Blob service endpoint (empty: the account's on Azure)"
        ),
        _ny("env_auth", _B, False, "Take credentials from the environment"),
        _ny("tenant", _STR, "", "Service principal's tenant ID"),
        _ny("client_id", _STR, "", "Service principal's client ID"),
        BackendOptionDecl(
            "client_secret", _STR, "", "Service principal's secret", secret=True, support=NOT_YET
        ),
        _ny("client_certificate_path", _STR, "", "Service principal's certificate"),
        _ny("use_msi", _B, False, "Use a managed service identity"),
        _ny("use_emulator", _B, False, "Use the local storage emulator's well-known account"),
        _ny("upload_cutoff", _S, 0, "Size below which uploads are a single PUT"),
        _ny("chunk_size", _S, 4 * _MiB, "Upload block size"),
        _ny("upload_concurrency", _I, 16, "Blocks of one upload sent at once"),
        _ny("list_chunk", _I, 5000, "Blobs asked for per listing request"),
        _ny("access_tier", _STR, "", "Access tier of new blobs"),
        _ny("archive_tier_delete", _B, False, "Delete archive-tier blobs before overwriting"),
        _ny("disable_checksum", _B, False, "Do not store MD5 checksums"),
        *_MEMORY_POOL,
        _ny("encoding", _STR, "", "Encoding of blob names"),
        _ny("public_access", _STR, "", "Public access level of created containers"),
        _ny("no_check_container", _B, False, "Do not check or create the container"),
        _ny("no_head_object", _B, False, "Do not read a blob's properties before reading it"),
        _unused("description", _STR, "", "Description of the remote", DESCRIPTION),
    ),
    # The container is the path's first segment, unless sas_url names it: the
    # adapter checks.
)

_HTTP = BackendDecl(
    "http",
    (
        BackendOptionDecl("url", _STR, None, "URL of the HTTP site", required=True),
        _ny("headers", _STR, "", "Extra HTTP headers (key,value pairs)"),
        _ny("no_slash", _B, False, "Directories' URLs do not end in /"),
        _ny("no_head", _B, False, "Do not HEAD files for their size and time"),
        _ny("no_escape", _B, False, "Do not escape URL metacharacters in paths"),
        _unused("description", _STR, "", "Description of the remote", DESCRIPTION),
    ),
)

OTHER_BACKENDS = (_CRYPT, _ALIAS, _UNION, _WEBDAV, _FTP, _SMB, _AZUREBLOB, _HTTP)

_BACKENDS: Mapping[str, BackendDecl] = {
    decl.type: decl for decl in (_LOCAL, _S3, _SFTP, *OTHER_BACKENDS)
}


# Words that mark an undeclared option (an fsspec protocol's parameter, an unknown
# inline key) as secret: the registry cannot know those, so they are judged by name.
_SECRET_WORDS = ("pass", "secret", "token", "key", "credential", "sas")


def _declared_secrecy() -> dict[str, bool]:
    """Whether each declared option holds a secret, by bare name (`pass`) and by
    `<type>_<name>` (`sftp_pass`); a bare name secret in one backend is secret."""
    secrecy: dict[str, bool] = {}
    for backend in _BACKENDS.values():
        for decl in backend.options:
            secrecy[decl.name] = secrecy.get(decl.name, False) or decl.secret
            secrecy[f"{backend.type}_{decl.name}"] = decl.secret
    return secrecy


_DECLARED_SECRECY: Mapping[str, bool] = _declared_secrecy()


def is_secret_option(key: str) -> bool:
    """Whether option `key` holds a value never to show (`pass`, `sftp-pass`,
    `S3_SECRET_ACCESS_KEY`, an fsspec `password`...). Declared options answer by
    their `secret` flag; other names are judged by the words in them."""
    normal = key.strip().lower().replace("-", "_")
    declared = _DECLARED_SECRECY.get(normal)
    if declared is not None:
        return declared
    return any(word in normal for word in _SECRET_WORDS)


def backend_types() -> list[str]:
    """The declared backend types, sorted. Other types are fsspec protocols."""
    return sorted(_BACKENDS)


def find_backend(backend_type: str) -> BackendDecl:
    """The declaration of `backend_type`; any other well-formed name is taken as an
    fsspec protocol whose options pass through (the storage factory refuses it if
    no such protocol is installed)."""
    decl = _BACKENDS.get(backend_type)
    if decl is not None:
        return decl
    if _PROTOCOL_RE.fullmatch(backend_type):
        return BackendDecl(backend_type, (), passthrough=True)
    raise OptionError(
        f'unknown backend type "{backend_type}" (declared types: {", ".join(backend_types())}; '
        "other types are fsspec protocol names: lowercase letters, digits and _)"
    )
