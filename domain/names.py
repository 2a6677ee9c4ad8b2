"""Volume names. The name becomes a directory under the base directory, so it
must never hold a path separator or a parent reference (rclone accepted
`../../etcx` and created /etcx)."""

from __future__ import annotations

import re

from domain.errors import InvalidVolumeName

MAX_NAME_LENGTH = 255  # a single path component on Linux

# Docker's own rule for local volume names.
_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")

_ALLOWED = (
    "a volume name must start with a letter or digit, continue with letters, digits, "
    f'"_", "." or "-", hold no "..", and be at most {MAX_NAME_LENGTH} characters'
)


def validate_volume_name(name: str) -> str:
    """Return `name` unchanged if it is safe to use as a directory name."""
    if not name:
        raise InvalidVolumeName(f"empty volume name: {_ALLOWED}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidVolumeName(f"volume name is {len(name)} characters long: {_ALLOWED}")
    # fullmatch on an ASCII-only class, so no "/", NUL, newline or non-ASCII can pass.
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidVolumeName(f"invalid volume name {name!r}: {_ALLOWED}")
    return name
