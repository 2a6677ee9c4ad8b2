"""rclone's `--log-format`: a comma separated list of what each log line shows.

rclone's items: date, time, microseconds, UTC, longfile, shortfile, pid, nolevel,
json. Here they are turned into a loguru format string (the entrypoints own
loguru); `json` asks for one JSON object per line instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import OptionError

LOG_FORMAT_ITEMS = (
    "date",
    "time",
    "microseconds",
    "UTC",
    "longfile",
    "shortfile",
    "pid",
    "nolevel",
    "json",
)
_BY_LOWER = {item.lower(): item for item in LOG_FORMAT_ITEMS}


@dataclass(frozen=True)
class LogFormat:
    template: str  # loguru format
    utc: bool
    json: bool


def _items(raw: str) -> list[str]:
    items = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        item = _BY_LOWER.get(part.lower())
        if item is None:
            raise OptionError(
                f'log-format: unknown item "{part}" (use a comma separated list of '
                f"{', '.join(LOG_FORMAT_ITEMS)})"
            )
        items.append(item)
    return items


def check_log_format(raw: str) -> None:
    _items(raw)


def log_format(raw: str, name_field: str = "{name}") -> LogFormat:
    """The loguru template for rclone's `--log-format` items, e.g. "date,time" is
    "2026/01/02 15:04:05 INFO  : message" as rclone prints it."""
    items = set(_items(raw))
    utc = "!UTC" if "UTC" in items else ""
    stamp = []
    if "date" in items:
        stamp.append(f"{{time:YYYY/MM/DD{utc}}}")
    if "time" in items or "microseconds" in items:
        clock = "HH:mm:ss.SSSSSS" if "microseconds" in items else "HH:mm:ss"
        stamp.append(f"{{time:{clock}{utc}}}")
    parts = []
    if "pid" in items:
        parts.append("[{process}]")
    if stamp:
        parts.append(" ".join(stamp))
    if "longfile" in items:
        parts.append("{file.path}:{line}:")
    elif "shortfile" in items:
        parts.append("{file.name}:{line}:")
    if "nolevel" not in items:
        parts.append("{level: <7}")
    parts.append(name_field + ": {message}")
    return LogFormat(" ".join(parts), utc="UTC" in items, json="json" in items)
