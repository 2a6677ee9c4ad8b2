"""The remotes that wrap other remotes: crypt, alias and union."""

from __future__ import annotations

from domain.backend_decl import (
    BOOL,
    DESCRIPTION_OPTION,
    INT,
    NO_FREE_SPACE,
    NO_SERVER_SIDE_COPY,
    SIZE,
    STRING,
    BackendDecl,
    BackendOptionDecl,
    MiB,
    not_yet,
    unused,
)

CRYPT_NAME_MODES = ("standard", "obfuscate", "off")
CRYPT_NAME_ENCODINGS = ("base32", "base64", "base32768")

CRYPT = BackendDecl(
    "crypt",
    (
        BackendOptionDecl(
            "remote", STRING, None, "Remote to encrypt into, e.g. myremote:path", required=True
        ),
        BackendOptionDecl(
            "filename_encryption",
            STRING,
            "standard",
            "How file names are encrypted: standard, obfuscate or off",
            choices=CRYPT_NAME_MODES,
        ),
        BackendOptionDecl("directory_name_encryption", BOOL, True, "Encrypt directory names too"),
        BackendOptionDecl(
            "password",
            STRING,
            None,
            "Password, rclone-obscured",
            secret=True,
            obscured=True,
            required=True,
        ),
        BackendOptionDecl(
            "password2",
            STRING,
            "",
            "Salt password, rclone-obscured (empty: rclone's fixed salt)",
            secret=True,
            obscured=True,
        ),
        BackendOptionDecl(
            "filename_encoding",
            STRING,
            "base32",
            "Encoding of encrypted names: base32, base64 or base32768",
            choices=CRYPT_NAME_ENCODINGS,
        ),
        BackendOptionDecl(
            "no_data_encryption", BOOL, False, "Encrypt names only, leave contents as they are"
        ),
        BackendOptionDecl(
            "suffix", STRING, ".bin", "Suffix of file names with filename_encryption off"
        ),
        unused(
            "server_side_across_configs",
            BOOL,
            False,
            "Allow server-side copies between crypt remotes",
            NO_SERVER_SIDE_COPY,
        ),
        not_yet("show_mapping", BOOL, False, "Log each plain name with its encrypted name"),
        not_yet("pass_bad_blocks", BOOL, False, "Return zeros for chunks that fail authentication"),
        not_yet(
            "strict_names", BOOL, False, "Fail on names that do not decrypt instead of skipping"
        ),
        DESCRIPTION_OPTION,
    ),
    remote_options=("remote",),
)

ALIAS = BackendDecl(
    "alias",
    (
        BackendOptionDecl(
            "remote", STRING, None, "Remote or path to alias, e.g. myremote:path", required=True
        ),
        DESCRIPTION_OPTION,
    ),
    remote_options=("remote",),
)

UNION_ACTION_POLICIES = ("epall", "all", "epff", "ff")
UNION_CREATE_POLICIES = ("epmfs", "mfs", "epff", "ff")
UNION_SEARCH_POLICIES = ("ff", "epff")

UNION = BackendDecl(
    "union",
    (
        BackendOptionDecl(
            "upstreams",
            STRING,
            None,
            "Space-separated remotes; a remote may end in :ro, :nc or :writeback",
            required=True,
        ),
        BackendOptionDecl(
            "action_policy",
            STRING,
            "epall",
            "Which upstreams remove, rename and set times act on",
            choices=UNION_ACTION_POLICIES,
        ),
        BackendOptionDecl(
            "create_policy",
            STRING,
            "epmfs",
            "Which upstream new files and directories go to",
            choices=UNION_CREATE_POLICIES,
        ),
        BackendOptionDecl(
            "search_policy",
            STRING,
            "ff",
            "Which upstream a path is read from",
            choices=UNION_SEARCH_POLICIES,
        ),
        unused(
            "cache_time",
            INT,
            120,
            "Seconds to keep upstreams' free space figures",
            NO_FREE_SPACE,
        ),
        unused("min_free_space", SIZE, 1024 * MiB, "Least free space to create on", NO_FREE_SPACE),
        DESCRIPTION_OPTION,
    ),
    remote_options=("upstreams",),
)
