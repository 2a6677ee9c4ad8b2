"""The flags of `rclone serve docker` as rclone's own documentation lists them.

The page is tests/data/rclone_serve_docker.md (rclone's page, copied unchanged
under a line saying where it comes from), so the tests compare our options with
what rclone publishes, not with a list transcribed from our own code.
"""

from __future__ import annotations

import re
from pathlib import Path

SERVE_DOCKER_PAGE = Path(__file__).parent / "data" / "rclone_serve_docker.md"

# One flag of the page's "## Options" block, as pflag prints it:
# `-o, --option stringArray Help text (default x)`; booleans have no type word.
_FLAG_LINE = re.compile(
    r"^(?:-\w, )?--(?P<name>[a-z0-9-]+) .*?(?: \(default (?P<default>[^)]*)\))?$"
)


def serve_docker_flags() -> dict[str, str | None]:
    """Each flag of the page's Options block with the default it shows, if any."""
    lines = SERVE_DOCKER_PAGE.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Options")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    flags: dict[str, str | None] = {}
    for line in lines[start:end]:
        if match := _FLAG_LINE.match(line):
            flags[match["name"]] = match["default"]
    return flags


def mentions_flag(name: str) -> bool:
    """Whether the page's text refers to `--name` (global flags are only mentioned)."""
    return f"`--{name}`" in SERVE_DOCKER_PAGE.read_text(encoding="utf-8")
