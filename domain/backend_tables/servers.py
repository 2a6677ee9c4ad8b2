"""Remotes on file servers: WebDAV, FTP, SMB and plain HTTP."""

from __future__ import annotations

from domain.backend_decl import (
    BOOL,
    DESCRIPTION_OPTION,
    DURATION,
    INT,
    NO_CONNECTION_POOL,
    NO_PACER,
    NO_TERMINAL,
    SIZE,
    STRING,
    BackendDecl,
    BackendOptionDecl,
    MiB,
    not_yet,
    server_login,
    unused,
)
from domain.options import NOT_YET

WEBDAV_VENDORS = (
    "fastmail",
    "nextcloud",
    "owncloud",
    "sharepoint",
    "sharepoint-ntlm",
    "rclone",
    "other",
)

WEBDAV = BackendDecl(
    "webdav",
    (
        BackendOptionDecl("url", STRING, None, "URL of the WebDAV server", required=True),
        BackendOptionDecl(
            "vendor",
            STRING,
            "",
            "Server software (nextcloud, owncloud, rclone, other...): how times are kept",
            choices=WEBDAV_VENDORS,
        ),
        BackendOptionDecl("user", STRING, "", "User name"),
        BackendOptionDecl(
            "pass", STRING, "", "Password, rclone-obscured", secret=True, obscured=True
        ),
        BackendOptionDecl(
            "bearer_token", STRING, "", "Bearer token instead of user and password", secret=True
        ),
        not_yet("bearer_token_command", STRING, "", "Command printing a bearer token"),
        not_yet("encoding", STRING, "", "Encoding of file names"),
        not_yet("headers", STRING, "", "Extra HTTP headers (key,value pairs)"),
        unused("pacer_min_sleep", DURATION, 0.01, "Least time between requests", NO_PACER),
        not_yet("nextcloud_chunk_size", SIZE, 10 * MiB, "Nextcloud upload chunk size"),
        not_yet("owncloud_exclude_shares", BOOL, False, "Leave ownCloud shares out"),
        not_yet("owncloud_exclude_mounts", BOOL, False, "Leave ownCloud mounts out"),
        not_yet("unix_socket", STRING, "", "Unix socket to connect to instead of TCP"),
        not_yet("auth_redirect", BOOL, False, "Keep authentication across redirects"),
        DESCRIPTION_OPTION,
    ),
)

FTP = BackendDecl(
    "ftp",
    (
        *server_login("FTP", 21),
        BackendOptionDecl(
            "tls",
            BOOL,
            False,
            "Implicit FTPS (TLS from the start, usually port 990)",
            support=NOT_YET,
        ),
        BackendOptionDecl("explicit_tls", BOOL, False, "Explicit FTPS (AUTH TLS after connecting)"),
        not_yet("concurrency", INT, 0, "Most simultaneous FTP connections (0: no limit)"),
        not_yet("no_check_certificate", BOOL, False, "Do not check the server's TLS certificate"),
        not_yet("disable_epsv", BOOL, False, "Do not use EPSV"),
        not_yet("disable_mlsd", BOOL, False, "Do not use MLSD"),
        not_yet("disable_utf8", BOOL, False, "Do not ask the server for UTF-8"),
        not_yet("writing_mdtm", BOOL, False, "Set times with MDTM instead of MFMT"),
        not_yet("force_list_hidden", BOOL, False, "List hidden files with LIST -a"),
        unused(
            "idle_timeout", DURATION, 60.0, "Close idle connections after this", NO_CONNECTION_POOL
        ),
        unused(
            "close_timeout",
            DURATION,
            60.0,
            "Longest wait for a close to answer",
            NO_CONNECTION_POOL,
        ),
        unused("tls_cache_size", INT, 32, "TLS sessions kept for reuse", NO_CONNECTION_POOL),
        not_yet("disable_tls13", BOOL, False, "Do not use TLS 1.3"),
        unused(
            "shut_timeout",
            DURATION,
            60.0,
            "Longest wait for data connections to close",
            NO_CONNECTION_POOL,
        ),
        BackendOptionDecl(
            "ask_password", BOOL, False, "Ask for a password interactively", support=NO_TERMINAL
        ),
        not_yet("socks_proxy", STRING, "", "SOCKS5 proxy to connect through"),
        not_yet("encoding", STRING, "", "Encoding of file names"),
        DESCRIPTION_OPTION,
    ),
)

SMB = BackendDecl(
    "smb",
    (
        *server_login("SMB", 445),
        BackendOptionDecl("domain", STRING, "WORKGROUP", "Domain name for NTLM authentication"),
        not_yet("spn", STRING, "", "Service principal name"),
        unused(
            "idle_timeout", DURATION, 60.0, "Close idle connections after this", NO_CONNECTION_POOL
        ),
        not_yet("hide_special_share", BOOL, True, "Hide special shares (print$, IPC$...)"),
        not_yet("case_insensitive", BOOL, True, "Whether the server is case insensitive"),
        not_yet("encoding", STRING, "", "Encoding of file names"),
        DESCRIPTION_OPTION,
    ),
    # The share is the path's first segment: the adapter checks.
)


HTTP = BackendDecl(
    "http",
    (
        BackendOptionDecl("url", STRING, None, "URL of the HTTP site", required=True),
        not_yet("headers", STRING, "", "Extra HTTP headers (key,value pairs)"),
        not_yet("no_slash", BOOL, False, "Directories' URLs do not end in /"),
        not_yet("no_head", BOOL, False, "Do not HEAD files for their size and time"),
        not_yet("no_escape", BOOL, False, "Do not escape URL metacharacters in paths"),
        DESCRIPTION_OPTION,
    ),
)
