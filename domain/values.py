"""rclone's value syntaxes: parsers and formatters for option values.

Every parser takes the option's name so that its error names the option, the bad
value and the forms that would have been accepted. Formatters produce text the
parsers read back to the same value (the state file and `--help` rely on it).
"""

from __future__ import annotations

import csv
import enum
import math
import re
from typing import Final

from domain.errors import OptionError
from domain.volume import UNLIMITED, CacheMode

# A duration of "off": never. Infinity compares above every real timeout and
# survives arithmetic (now + DURATION_OFF), where rclone uses the largest int64
# of nanoseconds (about 292 years).
DURATION_OFF: Final = math.inf

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"

# Exactly the spellings Go's strconv.ParseBool accepts, which is what rclone uses.
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})

_SIZE_RE = re.compile(rf"({_NUMBER})(?:([bBkKmMgGtTpP])(i[bB]?)?)?")
_SIZE_MULTIPLIERS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE_FORMS = (
    "use a number with an optional suffix B, K, M, G, T, P, optionally followed by "
    'i or iB, e.g. 10M or 1.5Gi; or "off"'
)

_NS = 1e-9
# Go's units plus rclone's d/w/M/y; case matters ("m" minute, "M" month).
_DURATION_UNITS: dict[str, float] = {
    "ns": _NS,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign, as Go prints it
    "\u03bcs": 1e-6,  # Greek mu, which Go also accepts
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "M": 30 * 86400.0,
    "y": 365 * 86400.0,
}
_DURATION_PART_RE = re.compile(rf"({_NUMBER})([a-zA-Z\u00b5\u03bc]+)")
_DURATION_FORMS = (
    "use a number of seconds or a number with a unit ns, us, ms, s, m, h, d, w, M (30d) "
    'or y (365d), combinable like 1h30m; or "off"'
)

_MODE_RE = re.compile(r"(?:0[oO])?[0-7]{1,4}")
_UINT32_MAX = (1 << 32) - 1


def _fail(name: str, what: str, raw: str, forms: str) -> OptionError:
    return OptionError(f'{name}: invalid {what} "{raw}" ({forms})')


def parse_bool(name: str, raw: str) -> bool:
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise _fail(name, "boolean", raw, "use true or false, or 1 or 0")


def parse_tristate(name: str, raw: str) -> bool | None:
    """A boolean that may also be left to the filesystem ("unset")."""
    if raw.lower() in ("", "unset"):
        return None
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise _fail(name, "value", raw, 'use true, false or "unset"')


def parse_size(name: str, raw: str) -> int:
    """Bytes; a bare number is KiB (rclone's rule); "off" and "-1" are UNLIMITED."""
    text = raw.strip()
    if text.lower() == "off" or text == "-1":
        return UNLIMITED
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise _fail(name, "size", raw, _SIZE_FORMS)
    number, letter, binary = match.groups()
    if letter is None:
        multiplier = 1 << 10
    elif letter.lower() == "b":
        if binary:  # "BiB" is not a unit
            raise _fail(name, "size", raw, _SIZE_FORMS)
        multiplier = 1
    else:
        multiplier = _SIZE_MULTIPLIERS[letter.lower()]
    return int(float(number) * multiplier)


def format_size(value: int) -> str:
    """Exact: the largest binary unit that divides the value, so parsing gives it back."""
    if value < 0:
        return "off"
    if value == 0:
        return "0"
    for suffix, unit in (("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20)):
        if value % unit == 0:
            return f"{value // unit}{suffix}"
    if value % 1024 == 0:
        return f"{value // 1024}Ki"
    return f"{value}B"


def parse_duration(name: str, raw: str) -> float:
    """Seconds. Go's form ("1h30m", "20ms"), a bare number of seconds, rclone's
    d/w/M/y units, or "off" (DURATION_OFF). Negative durations mean nothing here."""
    text = raw.strip()
    if text == "off":
        return DURATION_OFF
    if re.fullmatch(_NUMBER, text):
        return float(text)
    total = 0.0
    pos = 0
    for match in _DURATION_PART_RE.finditer(text):
        if match.start() != pos:
            break
        number, unit = match.groups()
        if unit not in _DURATION_UNITS:
            raise _fail(name, "duration", raw, _DURATION_FORMS)
        total += float(number) * _DURATION_UNITS[unit]
        pos = match.end()
    if pos != len(text) or not text:
        raise _fail(name, "duration", raw, _DURATION_FORMS)
    return total


def format_duration(value: float) -> str:
    """Go's time.Duration.String() ("1h0m0s", "5m0s", "20ms", "0s"); "off" for never."""
    if math.isinf(value):
        return "off"
    nanos = round(value * 1e9)
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos == 0:
        return "0s"
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if nanos >= size:
                return f"{sign}{_trim(nanos, size)}{unit}"
    hours, rest = divmod(nanos, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    text = f"{_trim(rest, 1_000_000_000)}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _trim(value: int, unit: int) -> str:
    """value/unit as an exact decimal without trailing zeros (integer arithmetic)."""
    whole, frac = divmod(value, unit)
    if frac == 0:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


def parse_mode(name: str, raw: str) -> int:
    """Octal permission bits: "0777", "777", "022" (a "0o" prefix is also read)."""
    text = raw.strip()
    if not _MODE_RE.fullmatch(text):
        raise _fail(name, "octal mode", raw, "use octal digits 0-7, e.g. 0777 or 022")
    return int(text[2:] if text[:2].lower() == "0o" else text, 8)


def format_mode(value: int) -> str:
    return f"0{value:03o}"


def parse_int(name: str, raw: str) -> int:
    text = raw.strip()
    if not re.fullmatch(r"[-+]?\d+", text):
        raise _fail(name, "integer", raw, "use a whole number, e.g. 4")
    return int(text)


def parse_uint32(name: str, raw: str) -> int:
    text = raw.strip()
    if not re.fullmatch(r"\+?\d+", text) or int(text) > _UINT32_MAX:
        raise _fail(name, "value", raw, f"use a whole number from 0 to {_UINT32_MAX}")
    return int(text)


def parse_cache_mode(name: str, raw: str) -> CacheMode:
    try:
        return CacheMode(raw.strip().lower())
    except ValueError:
        choices = "|".join(m.value for m in CacheMode)
        raise _fail(name, "cache mode", raw, f"use one of {choices}") from None


def parse_string_list(raw: str, name: str = "list") -> tuple[str, ...]:
    """A comma-separated list, as a repeatable flag arrives through `-o key=a,b`.

    As rclone reads lists (CSV), an item in double quotes may hold commas:
    `-o include='"*.{jpg,png}",*.txt'`; `""` inside quotes is one `"`."""
    if '"' not in raw:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    try:
        rows = list(csv.reader([raw], skipinitialspace=True, strict=True))
    except csv.Error as exc:
        raise OptionError(f'{name}: invalid list "{raw}" ({exc}; quote items with ")') from None
    return tuple(item.strip() for item in (rows[0] if rows else []) if item.strip())


def format_string_list(value: tuple[str, ...]) -> str:
    """The `-o` form of a list: items with commas or quotes are quoted (CSV)."""
    return ",".join(
        '"' + item.replace('"', '""') + '"' if ("," in item or '"' in item) else item
        for item in value
    )


OptionValue = bool | int | float | str | tuple[str, ...] | CacheMode | None


class ValueType(enum.Enum):
    """The value syntaxes; `.value` is the type name shown in `--help` (rclone's)."""

    BOOL = "bool"
    TRISTATE = "Tristate"
    SIZE = "SizeSuffix"
    DURATION = "Duration"
    MODE = "FileMode"
    INT = "int"
    UINT32 = "uint32"
    STRING = "string"
    STRING_LIST = "stringArray"
    CACHE_MODE = "CacheMode"

    def parse(self, name: str, raw: str) -> OptionValue:
        match self:
            case ValueType.BOOL:
                return parse_bool(name, raw)
            case ValueType.TRISTATE:
                return parse_tristate(name, raw)
            case ValueType.SIZE:
                return parse_size(name, raw)
            case ValueType.DURATION:
                return parse_duration(name, raw)
            case ValueType.MODE:
                return parse_mode(name, raw)
            case ValueType.INT:
                return parse_int(name, raw)
            case ValueType.UINT32:
                return parse_uint32(name, raw)
            case ValueType.STRING:
                return raw
            case ValueType.STRING_LIST:
                return parse_string_list(raw, name)
            case ValueType.CACHE_MODE:
                return parse_cache_mode(name, raw)

    def format(self, value: OptionValue) -> str:
        """The raw form of a value of this type; parse(format(v)) == v."""
        if value is None:
            return "unset"
        match self:
            case ValueType.BOOL | ValueType.TRISTATE:
                return "true" if value else "false"
            case ValueType.SIZE:
                assert isinstance(value, int)
                return format_size(value)
            case ValueType.DURATION:
                assert isinstance(value, int | float)
                return format_duration(float(value))
            case ValueType.MODE:
                assert isinstance(value, int)
                return format_mode(value)
            case ValueType.STRING_LIST:
                assert isinstance(value, tuple)
                return format_string_list(value)
            case ValueType.CACHE_MODE:
                assert isinstance(value, CacheMode)
                return value.value
            case _:
                return str(value)
