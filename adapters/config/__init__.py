"""Reading rclone-format config files from disk (the parsing is domain.rclone_config)."""

from adapters.config.file import (
    ConfigFileSource,
    default_config_path,
    load_rclone_config,
)

__all__ = ["ConfigFileSource", "default_config_path", "load_rclone_config"]
