from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """What the remote tells us about one file or directory."""

    name: str
    is_dir: bool
    size: int
    mtime: float  # seconds since the epoch
