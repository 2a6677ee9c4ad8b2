"""The `remote`/`fs` volume option: rclone's remote string syntax.

- `/some/dir` (no colon before the first slash): the local backend.
- `:type:path`: a backend made on the fly.
- `:type,key=value,key2="a,b":path`: on the fly, with backend options inline. A
  value may be quoted with " or ' to hold "," or ":"; inside, the quote character
  doubled stands for itself. A key without "=value" means "true".
- `name:path`: a remote from the config file (`RemoteSpec.name`); the type and
  options come from its section. `name,key=value:path` overrides some of them.
  A name holds letters, digits, `_`, `-`, `.`, `+`, `@` and spaces, and neither
  starts with `-` or a space nor ends with a space (rclone's newer, wider rule).

The rules follow rclone's fs/fspath.Parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from domain.errors import OptionError

LOCAL = "local"

_NAME_RE = re.compile(r"[A-Za-z0-9_ -]+")
_CONFIG_NAME_RE = re.compile(r"[\w.+@ -]+")
_PARAM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@dataclass(frozen=True)
class RemoteSpec:
    type: str  # "" for a config-file remote: its section says
    path: str
    # Backend options given inline, raw, keys as written (later duplicates win).
    options: dict[str, str] = field(default_factory=dict)
    name: str = ""  # the config-file remote's name; "" for on-the-fly and local remotes


def _error(remote: str, reason: str) -> OptionError:
    return OptionError(f'remote "{remote}": {reason}')


def parse_remote(remote: str) -> RemoteSpec:
    if remote == "":
        raise OptionError("remote must not be empty")
    # The end of the config name: the first ":" or "," (after a leading ":").
    head = re.compile(r"[^/\\:,]*").match(remote, 1 if remote.startswith(":") else 0)
    assert head is not None  # the pattern matches the empty string
    stop = head.end()
    # No ":" at all, or no ":" or "," before the first path separator: a local path.
    if ":" not in remote or stop == len(remote) or remote[stop] in "/\\":
        if remote.startswith(":"):
            raise _error(remote, 'an on-the-fly remote is ":type:path" or ":type,key=value:path"')
        return RemoteSpec(LOCAL, remote)

    if not remote.startswith(":"):
        name = remote[:stop]
        if not _CONFIG_NAME_RE.fullmatch(name) or name[0] in "- " or name.endswith(" "):
            raise _error(
                remote,
                "a config remote name holds letters, digits, _, -, ., +, @ and spaces, "
                "and neither starts with - or a space nor ends with a space",
            )
        options, path = _parse_params(remote, stop)
        return RemoteSpec("", path, options, name=name)
    backend_type = remote[1:stop]
    if not _NAME_RE.fullmatch(backend_type) or backend_type.startswith("-"):
        raise _error(
            remote,
            "the backend type after the leading colon is missing or holds characters "
            "other than letters, digits, _ and -",
        )
    options, path = _parse_params(remote, stop)
    return RemoteSpec(backend_type, path, options)


def _parse_params(remote: str, pos: int) -> tuple[dict[str, str], str]:
    """Parse `,k=v,...:` starting at `pos` (at "," or ":"); return options and the path."""
    options: dict[str, str] = {}
    while remote[pos] == ",":
        start = pos + 1
        pos = start
        while pos < len(remote) and remote[pos] in _PARAM_CHARS:
            pos += 1
        key = remote[start:pos]
        if pos == len(remote):
            raise _error(remote, 'an option name must be followed by "=", "," or ":"')
        if remote[pos] not in "=,:":
            raise _error(remote, "option names may only hold letters, digits and _")
        if not key:
            raise _error(remote, "empty option name")
        if remote[pos] != "=":
            options[key] = "true"
            continue
        value, pos = _parse_value(remote, pos + 1)
        options[key] = value
    return options, remote[pos + 1 :]


def _parse_value(remote: str, pos: int) -> tuple[str, int]:
    """Parse a value starting at `pos`; return it and the index of the "," or ":" ending it."""
    if pos < len(remote) and remote[pos] in "\"'":
        quote = remote[pos]
        chars: list[str] = []
        pos += 1
        while True:
            end = remote.find(quote, pos)
            if end < 0:
                raise _error(remote, f"unterminated quoted value (missing {quote})")
            chars.append(remote[pos:end])
            pos = end + 1
            if pos < len(remote) and remote[pos] == quote:  # doubled: a literal quote
                chars.append(quote)
                pos += 1
                continue
            if pos < len(remote) and remote[pos] in ",:":
                return "".join(chars), pos
            raise _error(remote, f'expected ",", ":" or another {quote} after a closing {quote}')
    end = pos
    while end < len(remote) and remote[end] not in ",:":
        end += 1
    if end == len(remote):
        raise _error(remote, 'a value must end with "," or ":" (the ":" before the path)')
    return remote[pos:end], end
