"""Remote strings inside a remote's options (crypt's `remote`, alias's `remote`,
union's `upstreams`), made self-contained.

A wrapping remote names the remote it wraps as a remote string, often a remote of
the config file (`remote = mysftp:backup`). The mount worker builds storages from
the parsed options alone, so each such string is rewritten, when the volume's
options are parsed, as a connection string that carries the config section's
values inline (`:sftp,host="h",user="u":backup`), recursively for wrappers of
wrappers. Local paths and connection strings without config names stay as given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from domain.errors import OptionError
from domain.remote_spec import LOCAL, parse_remote

# The type of config remote `name` and the values its section sets, by key.
ConfigLookup = Callable[[str], tuple[str, dict[str, str]]]
# Which options of a backend type hold remote strings.
RemoteOptions = Callable[[str], tuple[str, ...]]

_UNION_SUFFIXES = (":ro", ":nc", ":writeback")
_MAX_DEPTH = 20  # a remote wrapping itself, through any chain, stops here


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def connection_string(backend_type: str, options: Mapping[str, str], path: str) -> str:
    """`:type,key="value",...:path`, which `parse_remote` reads back as given."""
    params = "".join(f",{key}={_quoted(value)}" for key, value in sorted(options.items()))
    return f":{backend_type}{params}:{path}"


def inline_remote(
    remote: str, lookup: ConfigLookup, remote_options: RemoteOptions, depth: int = 0
) -> str:
    """`remote` with every config remote in it (and in the remotes it wraps)
    replaced by its connection string."""
    if depth > _MAX_DEPTH:
        raise OptionError(f'remote "{remote}": remotes wrap each other in a loop')
    parsed = parse_remote(remote)
    if parsed.type == LOCAL and not parsed.name:
        return remote
    backend_type, options = parsed.type, dict(parsed.options)
    if parsed.name:
        backend_type, from_config = lookup(parsed.name)
        options = {**from_config, **options}
    for key in remote_options(backend_type):
        if key in options:
            options[key] = inline_option(
                backend_type, key, options[key], lookup, remote_options, depth + 1
            )
    return connection_string(backend_type, options, parsed.path)


def inline_option(
    backend_type: str,
    key: str,
    value: str,
    lookup: ConfigLookup,
    remote_options: RemoteOptions,
    depth: int = 0,
) -> str:
    """The value of a remote-holding option with its remotes inlined; union's
    `upstreams` is a space-separated list, each item perhaps with a suffix."""
    if backend_type != "union" or key != "upstreams":
        return inline_remote(value, lookup, remote_options, depth)
    return " ".join(
        _inline_upstream(item, lookup, remote_options, depth) for item in split_upstreams(value)
    )


def split_upstreams(value: str) -> list[str]:
    """union's upstreams: separated by spaces; a quoted one ("..." or '...') may
    hold spaces, as in rclone."""
    items: list[str] = []
    pos = 0
    while pos < len(value):
        if value[pos] == " ":
            pos += 1
            continue
        if value[pos] in "\"'":
            end = value.find(value[pos], pos + 1)
            if end < 0:
                raise OptionError(f"union upstreams: unterminated quote in {value!r}")
            items.append(value[pos + 1 : end])
            pos = end + 1
            continue
        end = value.find(" ", pos)
        end = len(value) if end < 0 else end
        items.append(value[pos:end])
        pos = end
    return items


def upstream_suffix(item: str) -> tuple[str, str]:
    """(remote, mode) of one union upstream: mode is "", "ro", "nc" or "writeback"."""
    for suffix in _UNION_SUFFIXES:
        if item.endswith(suffix) and len(item) > len(suffix):
            return item[: -len(suffix)], suffix[1:]
    return item, ""


def _inline_upstream(
    item: str, lookup: ConfigLookup, remote_options: RemoteOptions, depth: int
) -> str:
    remote, mode = upstream_suffix(item)
    inlined = inline_remote(remote, lookup, remote_options, depth)
    return _quoted_upstream(inlined + (f":{mode}" if mode else ""))


def _quoted_upstream(item: str) -> str:
    if " " not in item:
        return item
    quote = "'" if '"' in item else '"'
    if quote in item:
        raise OptionError(f"union upstream {item!r} holds spaces and both kinds of quotes")
    return f"{quote}{item}{quote}"
