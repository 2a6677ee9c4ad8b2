"""fsspec protocols as volume types, and their options: a protocol's options
(`-o memory-global-store=false`) are its filesystem class's constructor
parameters, typed by its signature: bool, int, float or str."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import fsspec

from domain.backends import BackendValue, is_secret_option
from domain.errors import OptionError
from domain.values import parse_bool, parse_int

# Protocols that are not volumes of their own: wrappers around another
# filesystem, or ones served by a dedicated adapter (sftp on asyncssh, s3).
_NOT_VOLUMES = frozenset(
    {
        "async_wrapper",
        "asynclocal",
        "asyncwrapper",
        "blockcache",
        "cached",
        "dask",
        "data",
        "dir",
        "filecache",
        "generic",
        "reference",
        "s3a",
        "simplecache",
        "ssh",
        "sftp",
    }
)
# Constructor parameters cloudvol sets itself.
_MANAGED = frozenset(
    {
        "asynchronous",
        "loop",
        "skip_instance_cache",
        "use_listings_cache",
        "listings_expiry_time",
        "max_paths",
        "batch_size",
        "fs",
        "target_protocol",
        "target_options",
    }
)


@lru_cache(maxsize=1)
def fsspec_protocols() -> tuple[str, ...]:
    """The installed fsspec protocols that can back a volume (imports each once)."""
    found: list[str] = []
    for protocol in sorted(fsspec.available_protocols()):
        if protocol in _NOT_VOLUMES:
            continue
        try:
            fsspec.get_filesystem_class(protocol)
        except (ImportError, ValueError):
            continue  # its library is not installed
        except AttributeError:
            continue  # a library that dropped it (adlfs no longer has Data Lake Gen1, "adl")
        found.append(protocol)
    return tuple(found)


def filesystem_class(protocol: str) -> type[Any] | None:
    """The fsspec class for `protocol`, or None when it is not an available volume type."""
    if protocol not in fsspec_protocols():
        return None
    cls: type[Any] = fsspec.get_filesystem_class(protocol)
    return cls


class _Kind:
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STR = "str"
    STRUCTURED = "structured"  # dicts, lists, callables: no text form


_SCALARS = {"bool": _Kind.BOOL, "int": _Kind.INT, "float": _Kind.FLOAT, "str": _Kind.STR}


def _annotation_kind(annotation: object) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = str(text).replace("Optional[", "").replace("]", "")
    kinds = {part.strip() for part in text.split("|")} - {"None", ""}
    if len(kinds) == 1:
        return _SCALARS.get(kinds.pop(), _Kind.STRUCTURED)
    return _Kind.STRUCTURED if kinds else None


def _default_kind(default: object) -> str:
    if isinstance(default, bool):
        return _Kind.BOOL
    if isinstance(default, int):
        return _Kind.INT
    if isinstance(default, float):
        return _Kind.FLOAT
    if default is None or isinstance(default, str):
        return _Kind.STR  # None: no hint; names, URLs and credentials are text
    return _Kind.STRUCTURED


def filesystem_parameters(cls: type[Any]) -> dict[str, str]:
    """The constructor parameters of an fsspec class and how to read their values."""
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return {}
    kinds: dict[str, str] = {}
    for name, param in signature.parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        kinds[name] = _annotation_kind(param.annotation) or _default_kind(param.default)
    return kinds


def accepts_kwargs(cls: type[Any]) -> bool:
    try:
        params = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD for p in params)


def fsspec_options(
    protocol: str, cls: type[Any], options: Mapping[str, BackendValue]
) -> dict[str, object]:
    """Type the raw `<protocol>-<option>` values by the class's constructor."""
    params = filesystem_parameters(cls)
    offered = sorted(name for name, kind in params.items() if name not in _MANAGED)
    typed: dict[str, object] = {}
    for name, value in sorted(options.items()):
        label = f"{protocol}-{name.replace('_', '-')}"
        kind = params.get(name)
        if name in _MANAGED:
            raise OptionError(f"{label}: set by cloudvol itself, not an option")
        if kind is None:
            raise OptionError(
                f'unsupported backend option "{label}" (the {protocol} options are: '
                f"{', '.join(o.replace('_', '-') for o in offered) or 'none'})"
            )
        if kind == _Kind.STRUCTURED:
            raise OptionError(f"{label}: takes a structured value, not supported yet")
        raw = value if isinstance(value, str) else str(value)
        try:
            typed[name] = _parse_kind(kind, label, raw)
        except OptionError:
            if is_secret_option(name):
                raise OptionError(f"{label}: invalid {kind} value (not shown)") from None
            raise
    return typed


def _parse_kind(kind: str, label: str, raw: str) -> object:
    if kind == _Kind.BOOL:
        return parse_bool(label, raw)
    if kind == _Kind.INT:
        return parse_int(label, raw)
    if kind == _Kind.FLOAT:
        try:
            return float(raw)
        except ValueError:
            raise OptionError(f'{label}: invalid number "{raw}" (e.g. 1.5)') from None
    return raw
