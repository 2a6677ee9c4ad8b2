"""Keeping secrets out of the logs: option values and inline connection-string
parameters whose names look secret are replaced."""

from __future__ import annotations

import re
from collections.abc import Mapping

REDACTED = "***"
_SECRET_WORDS = ("pass", "secret", "key_pem", "token")
# `name=value` inside a connection string such as `:sftp,host=h,pass=x:/path`;
# a value may be quoted (rclone's fspath quoting) or run to the next `,` or `:`.
_INLINE = re.compile(r"""(?P<key>[\w-]+)=(?P<value>"(?:[^"]|"")*"|'(?:[^']|'')*'|[^,:]*)""")


def is_secret_key(key: str) -> bool:
    normal = key.lower().replace("-", "_")
    return any(word in normal for word in _SECRET_WORDS)


def _redact_inline(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        key = match.group("key")
        return f"{key}={REDACTED}" if is_secret_key(key) else match.group(0)

    return _INLINE.sub(repl, text)


def redact_options(opts: Mapping[str, str]) -> dict[str, str]:
    return {
        key: REDACTED if is_secret_key(key) else _redact_inline(value)
        for key, value in opts.items()
    }
