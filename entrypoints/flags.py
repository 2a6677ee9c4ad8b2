"""Command-line flags built from the option registry (domain/options.py).

Flags keep rclone's (pflag's) syntax: `--name value` or `--name=value`; a boolean
is `--flag` or `--flag=false` (never `--flag false`, so it cannot swallow a
positional argument); list flags repeat. Every flag defaults to None so that
`given_option_values` can tell which were given: those become the `defaults` of
`domain.volume_options.parse_volume_options`.
"""

from __future__ import annotations

import argparse

from domain.options import OPTIONS, OptionDecl, check_option_values
from domain.values import ValueType

_DEST_PREFIX = "registry_option:"
# Go's strconv.ParseBool spellings, accepted after "=" on a boolean flag.
_BOOL_SPELLINGS = ("1", "t", "T", "true", "TRUE", "True", "0", "f", "F", "false", "FALSE", "False")


def _dest(decl: OptionDecl) -> str:
    # A prefixed dest cannot collide with the daemon's own flags (cache-dir, ...).
    return _DEST_PREFIX + decl.name


def _help(decl: OptionDecl) -> str:
    text = decl.help
    default = decl.format_default()
    # uid/gid/umask say in their help that the process decides; their registry
    # default is a placeholder not worth showing.
    shown = "(default:" not in text and decl.type is not ValueType.STRING_LIST
    if shown and default not in ("", "false", "0s", "0"):
        text += f" (default {default})"
    if not decl.is_supported:
        text += f" [{decl.support}]"
    return text.replace("%", "%%")  # argparse %-formats help strings


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """Add every registry option to `parser` as `--<name>`."""
    group = parser.add_argument_group("mount and VFS options (also settable per volume with -o)")
    for decl in OPTIONS:
        names = [f"--{decl.name}"] + ([f"-{decl.short}"] if decl.short else [])
        dest = _dest(decl)
        if decl.type is ValueType.BOOL:
            group.add_argument(
                *names, dest=dest, action="store_const", const="true", default=None,
                help=_help(decl),
            )  # fmt: skip
            # argparse matches a whole "--flag=false" as an option string before
            # splitting at "=", so each spelling is its own hidden option.
            for spelling in _BOOL_SPELLINGS:
                group.add_argument(
                    f"--{decl.name}={spelling}", dest=dest, action="store_const",
                    const=spelling, default=None, help=argparse.SUPPRESS,
                )  # fmt: skip
        elif decl.type is ValueType.STRING_LIST:
            group.add_argument(
                *names, dest=dest, action="append", default=None, metavar="VALUE",
                help=_help(decl),
            )  # fmt: skip
        else:
            group.add_argument(
                *names, dest=dest, default=None, metavar=decl.type.value, help=_help(decl)
            )


def given_option_values(ns: argparse.Namespace) -> dict[str, str]:
    """Raw values of the registry options given on the command line, by option name.

    List flags are joined with "," (how `-o` carries lists). Raises
    domain.errors.OptionError, like a volume option would, for a malformed value
    or an option not supported yet, so the daemon refuses to start with it.
    """
    values: dict[str, str] = {}
    for decl in OPTIONS:
        raw = getattr(ns, _dest(decl), None)
        if raw is None:
            continue
        # A list is joined as `-o` carries it, quoting items that hold commas.
        values[decl.name] = decl.type.format(tuple(raw)) if isinstance(raw, list) else str(raw)
    check_option_values(values)
    return values


def take_option_value(ns: argparse.Namespace, name: str) -> str | None:
    """The raw value of registry option `name` given on the command line, removed
    from `ns`: for the options a frontend handles itself (`cloudvol mount`'s
    --daemon), which `given_option_values` would refuse as not for the plugin."""
    dest = _DEST_PREFIX + name
    raw = getattr(ns, dest, None)
    setattr(ns, dest, None)
    return None if raw is None else str(raw)
