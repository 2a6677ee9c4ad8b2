"""The local backend's options (rclone's backend/local)."""

from __future__ import annotations

from domain.backend_decl import (
    BOOL,
    DESCRIPTION_OPTION,
    STRING,
    BackendDecl,
    BackendOptionDecl,
    not_yet,
)
from domain.options import ONLY_WINDOWS

LOCAL = BackendDecl(
    "local",
    (
        BackendOptionDecl(
            "nounc", BOOL, False, "Disable long path names (UNC)", support=ONLY_WINDOWS
        ),
        not_yet("copy_links", BOOL, False, "Follow symlinks and show what they point to"),
        not_yet("links", BOOL, False, "Show symlinks as .rclonelink files"),
        not_yet("skip_links", BOOL, False, "Do not warn about skipped symlinks"),
        not_yet("zero_size_links", BOOL, False, "Report symlink sizes as 0"),
        not_yet("unicode_normalization", BOOL, False, "Normalise file names to Unicode NFC"),
        not_yet("no_check_updated", BOOL, False, "Do not check whether files change while read"),
        not_yet("one_file_system", BOOL, False, "Do not cross filesystem boundaries"),
        not_yet("case_sensitive", BOOL, False, "Report the filesystem as case sensitive"),
        not_yet("case_insensitive", BOOL, False, "Report the filesystem as case insensitive"),
        not_yet("no_clone", BOOL, False, "Do not use reflinks for server-side copies"),
        not_yet("no_preallocate", BOOL, False, "Do not preallocate space for written files"),
        not_yet("no_sparse", BOOL, False, "Do not write sparse files"),
        not_yet("no_set_modtime", BOOL, False, "Do not set modification times"),
        not_yet(
            "time_type", STRING, "mtime", "Which file time to show: mtime, atime, btime or ctime"
        ),
        not_yet("encoding", STRING, "", "Character encoding of file names"),
        DESCRIPTION_OPTION,
    ),
    root_must_be_absolute=True,
)
