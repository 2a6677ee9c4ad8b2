"""Daemon flags from the environment: `CLOUDVOL_<FLAG>`, as rclone reads `RCLONE_<FLAG>`.

A managed plugin and a systemd unit are configured through their environment, so
every flag of `cloudvol serve docker` can be set there too: `--vfs-cache-mode` is
`CLOUDVOL_VFS_CACHE_MODE`, `-v`/`--verbose` is `CLOUDVOL_VERBOSE=2`. A flag given on
the command line wins over the environment.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

ENV_PREFIX = "CLOUDVOL_"

# Go's strconv.ParseBool, which rclone uses for boolean flags from the environment.
_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


def env_name(action: argparse.Action) -> str | None:
    """`CLOUDVOL_<FLAG>` for an action's long option, None for hidden or positional ones."""
    if action.help == argparse.SUPPRESS:
        return None
    long_options = [o for o in action.option_strings if o.startswith("--") and "=" not in o]
    if not long_options or long_options[0] == "--help":
        return None
    return ENV_PREFIX + long_options[0][2:].upper().replace("-", "_")


def _value_from_env(action: argparse.Action, name: str, raw: str) -> object:
    if isinstance(action, argparse._CountAction):
        if not raw.strip().isdigit():
            raise ValueError(f"{name}={raw!r}: a count is expected, such as 1 or 2")
        return int(raw)
    if isinstance(action, argparse._StoreTrueAction):
        if raw not in _TRUE + _FALSE:
            raise ValueError(f"{name}={raw!r}: true or false is expected")
        return raw in _TRUE
    if isinstance(action, argparse._StoreConstAction):
        return raw  # a registry boolean: its value is checked with the other options
    if isinstance(action, argparse._AppendAction):
        return [item for item in raw.split(",") if item]  # rclone's lists are comma-separated
    return raw  # argparse applies the flag's type to a string default


def apply_environment(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Make every `CLOUDVOL_<FLAG>` set in `environ` the default of its flag, and name
    the variable in each flag's help. Raises ValueError naming a malformed variable."""
    defaults: dict[str, object] = {}
    for action in parser._actions:
        name = env_name(action)
        if name is None:
            continue
        action.help = f"{action.help or ''} [env {name}]".strip()
        if name in environ:
            defaults[action.dest] = _value_from_env(action, name, environ[name])
    parser.set_defaults(**defaults)
