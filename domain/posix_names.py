"""The length limit a local disk puts on one name, checked before the remote
sees the name (servers answer a long one with a generic failure, not
ENAMETOOLONG)."""

from __future__ import annotations

import errno

NAME_MAX = 255  # bytes in one path component, as Linux file systems allow


def _encoded(name: str) -> bytes:
    # Names arrive decoded as Linux's file-system encoding does it (UTF-8, with
    # undecodable bytes kept as surrogates); the limit counts the raw bytes.
    return name.encode("utf-8", "surrogateescape")


def check_name_length(name: str, stored_as: str | None = None) -> None:
    """Raise OSError(ENAMETOOLONG) if `name`, or the name the remote stores it
    under (`stored_as`, e.g. with `.rclonelink` added), is over NAME_MAX bytes."""
    for candidate in (name, stored_as):
        if candidate is not None and len(_encoded(candidate)) > NAME_MAX:
            raise OSError(
                errno.ENAMETOOLONG,
                f"name of {len(_encoded(candidate))} bytes (at most {NAME_MAX})",
            )
