"""Remotes defined in the environment, as rclone reads them.

`RCLONE_CONFIG_<NAME>_<KEY>=value` sets `key` of remote `name`, and a remote whose
`RCLONE_CONFIG_<NAME>_TYPE` is set exists even with no section in the config file.
cloudvol also reads `CLOUDVOL_CONFIG_<NAME>_<KEY>`, which wins over the rclone
spelling, and both win over the file, as in rclone. Names and keys are matched in
upper case; a remote known only from the environment is named in lower case, as
rclone lists it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from domain.rclone_config import DEFAULT_SECTION, RcloneConfig

# The later prefix wins when both set the same key.
ENV_PREFIXES = ("RCLONE_CONFIG_", "CLOUDVOL_CONFIG_")
_TYPE_SUFFIX = "_TYPE"


def _names_defined_in(environ: Mapping[str, str]) -> set[str]:
    names = set()
    for variable in environ:
        for prefix in ENV_PREFIXES:
            if variable.startswith(prefix) and variable.endswith(_TYPE_SUFFIX):
                name = variable[len(prefix) : -len(_TYPE_SUFFIX)]
                if name:
                    names.add(name.lower())
    return names


def _keys_from(environ: Mapping[str, str], remote: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for prefix in ENV_PREFIXES:
        start = f"{prefix}{remote.upper()}_"
        for variable, value in environ.items():
            if variable.startswith(start) and len(variable) > len(start):
                keys[variable[len(start) :].lower()] = value
    return keys


def with_environment_remotes(config: RcloneConfig, environ: Mapping[str, str]) -> RcloneConfig:
    """`config` with the remotes and keys that `environ` defines laid over it."""
    sections = {name: dict(keys) for name, keys in config.sections.items()}
    names = (set(sections) - {DEFAULT_SECTION}) | _names_defined_in(environ)
    changed = False
    for name in names:
        keys = _keys_from(environ, name)
        if keys:
            sections.setdefault(name, {}).update(keys)
            changed = True
    if not changed:
        return config
    frozen = {name: MappingProxyType(keys) for name, keys in sections.items()}
    return RcloneConfig(path=config.path, sections=MappingProxyType(frozen), exists=True)
