"""A declared backend's options as its adapter takes them, checked once against
their declaration in `domain.backends` (names, types, defaults, secrecy).

The volume options parser already typed what came from Docker; the adapters check
again because a `BackendSpec` can be built by hand (tests, other callers), and a
wrong type there would surface as an obscure failure deep inside a library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domain.backends import BackendOptionDecl, BackendValue, find_backend
from domain.errors import OptionError
from domain.values import ValueType

# The Python type of each value syntax backend options use.
_PYTHON_TYPES: Mapping[ValueType, type] = {
    ValueType.BOOL: bool,
    ValueType.INT: int,
    ValueType.SIZE: int,
    ValueType.DURATION: float,
    ValueType.STRING: str,
}


def _checked(backend_type: str, decl: BackendOptionDecl, value: BackendValue) -> BackendValue:
    kind = _PYTHON_TYPES[decl.type]
    # bool is an int subclass: refuse it where a number is wanted, and vice versa.
    is_bool = isinstance(value, bool)
    if kind is float and isinstance(value, int) and not is_bool:
        return float(value)
    if isinstance(value, kind) and (kind is bool) == is_bool:
        return value
    raise OptionError(f"{backend_type} option {decl.name!r} must be of type {kind.__name__}")


@dataclass(frozen=True)
class CheckedOptions:
    """Every option the adapter acts on, by its rclone name: given or default,
    each of its declared type; None for an option with no default, not given."""

    backend_type: str
    values: Mapping[str, BackendValue | None]
    secrets: tuple[str, ...]  # the values of options declared secret, as given

    def text(self, name: str) -> str:
        value = self.values[name]
        return "" if value is None else str(value)

    def integer(self, name: str) -> int | None:
        value = self.values[name]
        assert value is None or isinstance(value, int)  # checked by its declaration
        return value

    def number(self, name: str) -> float:
        value = self.values[name]
        assert isinstance(value, float)  # checked by its declaration, and defaulted
        return value

    def flag(self, name: str) -> bool:
        value = self.values[name]
        assert isinstance(value, bool)  # checked by its declaration, and defaulted
        return value


def check_backend_options(backend_type: str, given: Mapping[str, BackendValue]) -> CheckedOptions:
    """The options of `backend_type` that its adapter acts on (supported and not
    `unused`), `given` checked against their declarations and defaults filled in."""
    acted_on = {
        decl.name: decl
        for decl in find_backend(backend_type).options
        if decl.is_supported and not decl.unused
    }
    unknown = sorted(set(given) - set(acted_on))
    if unknown:
        raise OptionError(
            f"unsupported {backend_type} option {unknown[0]!r} "
            f"(supported: {', '.join(sorted(acted_on))})"
        )
    values: dict[str, BackendValue | None] = {}
    secrets: list[str] = []
    for name, decl in acted_on.items():
        value = given.get(name, decl.default)
        if decl.required and value in (None, ""):
            raise OptionError(f"{backend_type} option {name!r} is required")
        values[name] = None if value is None else _checked(backend_type, decl, value)
        if decl.secret and isinstance(value, str) and value:
            secrets.append(value)
    return CheckedOptions(backend_type, values, tuple(secrets))
