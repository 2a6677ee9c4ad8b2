"""SFTP's options (rclone's backend/sftp)."""

from __future__ import annotations

from domain.backend_decl import (
    BOOL,
    DESCRIPTION_OPTION,
    DURATION,
    INT,
    NO_SERVER_COMMANDS,
    NO_TERMINAL,
    SIZE,
    STRING,
    BackendDecl,
    BackendOptionDecl,
    not_yet,
    server_login,
    unused,
)

SFTP = BackendDecl(
    "sftp",
    (
        *server_login("SSH", 22, "SSH password, rclone-obscured"),
        BackendOptionDecl(
            "key_pem", STRING, "", "Private key in PEM form, newlines as \\n", secret=True
        ),
        BackendOptionDecl("key_file", STRING, "", "Path of a private key file"),
        BackendOptionDecl(
            "key_file_pass",
            STRING,
            "",
            "Passphrase of the key file, rclone-obscured",
            secret=True,
            obscured=True,
        ),
        BackendOptionDecl(
            "known_hosts_file",
            STRING,
            "",
            "known_hosts file to check the server key against (empty: not checked)",
        ),
        BackendOptionDecl("set_modtime", BOOL, True, "Set modification times on the server"),
        BackendOptionDecl("concurrency", INT, 64, "Outstanding requests per file"),
        BackendOptionDecl(
            "chunk_size",
            SIZE,
            None,
            "Size of each SFTP read/write request (default: the largest the server"
            " advertises, else 32 KiB)",
        ),
        BackendOptionDecl(
            "idle_timeout", DURATION, 60.0, "Close idle connections after this (0: keep them)"
        ),
        not_yet("pubkey", STRING, "", "Public key or certificate for key authentication"),
        not_yet("pubkey_file", STRING, "", "Path of a public key or certificate file"),
        not_yet("key_use_agent", BOOL, False, "Use only keys from ssh-agent"),
        not_yet("use_insecure_cipher", BOOL, False, "Allow weak ciphers and key exchanges"),
        unused(
            "disable_hashcheck", BOOL, False, "Do not run remote hash commands", NO_SERVER_COMMANDS
        ),
        BackendOptionDecl(
            "ask_password", BOOL, False, "Ask for a password interactively", support=NO_TERMINAL
        ),
        unused(
            "path_override", STRING, "", "Path to use for remote hash commands", NO_SERVER_COMMANDS
        ),
        unused(
            "shell_type",
            STRING,
            "",
            "Kind of shell on the server (unix, cmd, powershell, none)",
            NO_SERVER_COMMANDS,
        ),
        unused(
            "md5sum_command",
            STRING,
            "",
            "Command that prints MD5 sums on the server",
            NO_SERVER_COMMANDS,
        ),
        unused(
            "sha1sum_command",
            STRING,
            "",
            "Command that prints SHA-1 sums on the server",
            NO_SERVER_COMMANDS,
        ),
        not_yet("skip_links", BOOL, False, "Skip symlinks and other special files"),
        not_yet("subsystem", STRING, "sftp", "SSH subsystem to start"),
        not_yet("server_command", STRING, "", "Command to run as the SFTP server instead"),
        not_yet("use_fstat", BOOL, False, "Use fstat instead of stat on open files"),
        not_yet(
            "disable_concurrent_reads", BOOL, False, "Read each file with one request at a time"
        ),
        not_yet(
            "disable_concurrent_writes", BOOL, False, "Write each file with one request at a time"
        ),
        not_yet("connections", INT, 0, "Most connections to the server (0: no limit)"),
        not_yet("set_env", STRING, "", "Environment variables for the server session"),
        not_yet("ciphers", STRING, "", "Ciphers to offer, in order of preference"),
        not_yet("key_exchange", STRING, "", "Key exchange algorithms to offer"),
        not_yet("macs", STRING, "", "MAC algorithms to offer"),
        not_yet("host_key_algorithms", STRING, "", "Host key algorithms to offer"),
        not_yet("ssh", STRING, "", "External ssh command to use instead of the built-in client"),
        not_yet("socks_proxy", STRING, "", "SOCKS5 proxy to connect through"),
        not_yet("copy_is_hardlink", BOOL, False, "Make server-side copies as hard links"),
        DESCRIPTION_OPTION,
    ),
)
