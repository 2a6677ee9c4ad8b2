from dataclasses import dataclass

from domain.metadata import FileMetadata


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """What the remote tells us about one file or directory."""

    name: str
    is_dir: bool
    size: int
    mtime: float  # seconds since the epoch
    # A `.rclonelink` file shown as a symlink (`name` is then without the suffix).
    is_link: bool = False
    # Mode, owner and times where the backend keeps them (used with --metadata).
    metadata: FileMetadata | None = None
    nlink: int = 1  # hard links to the file, where the server reports them
