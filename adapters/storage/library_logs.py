"""Library loggers the storage adapters keep below DEBUG, whatever -v says."""

from __future__ import annotations

import logging


def cap_at_info(*names: str) -> None:
    """Log `names` at INFO at most: their DEBUG lines are per request (too many
    to keep, or carrying secrets)."""
    for name in names:
        library = logging.getLogger(name)
        if library.getEffectiveLevel() < logging.INFO:
            library.setLevel(logging.INFO)
