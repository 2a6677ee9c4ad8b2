"""Keeping secrets out of the logs: option values and inline connection-string
parameters that hold secrets (`domain.backends.is_secret_option`) are replaced."""

from __future__ import annotations

import re
from collections.abc import Mapping

from domain.backends import is_secret_option

REDACTED = "***"
# `name=value` inside a connection string such as `:sftp,host=h,pass=x:/path`;
# a value may be quoted (rclone's fspath quoting) or run to the next `,` or `:`.
# A key starts where a word starts: without the look-behind every position inside a
# long word would be tried as a key's start, quadratic time on a 100 KB value.
_INLINE = re.compile(
    r"""(?<![\w-])(?P<key>[\w-]+)=(?P<value>"(?:[^"]|"")*"|'(?:[^']|'')*'|[^,:]*)"""
)


def _redact_inline(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        key, value = match.group("key"), match.group("value")
        if is_secret_option(key):
            return f"{key}={REDACTED}"
        if value[:1] in ("'", '"'):  # a remote inside a remote (crypt's `remote=':sftp,...'`)
            return f"{key}={value[0]}{_redact_inline(value[1:-1])}{value[0]}"
        return match.group(0)

    return _INLINE.sub(repl, text)


def redact_options(opts: Mapping[str, str]) -> dict[str, str]:
    return {
        key: REDACTED if is_secret_option(key) else _redact_inline(value)
        for key, value in opts.items()
    }
