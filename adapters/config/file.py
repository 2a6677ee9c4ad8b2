"""The config file on disk: where it is by default, reading it, and re-reading it
when it changes (as rclone does: it checks the file's mtime and size on use)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from adapters.config.encrypted import decrypt_config, is_encrypted, password_from
from domain.config_environment import with_environment_remotes
from domain.rclone_config import (
    ConfigFileError,
    RcloneConfig,
    missing_config,
    parse_rclone_config,
)


def default_config_path(environ: Mapping[str, str] | None = None) -> str:
    """`$XDG_CONFIG_HOME/cloudvol/cloudvol.conf`, else `~/.config/cloudvol/cloudvol.conf`."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "cloudvol", "cloudvol.conf")


def load_rclone_config(path: str, environ: Mapping[str, str] | None = None) -> RcloneConfig:
    """Read and parse the config file at `path`, with the remotes that the
    environment defines laid over it (domain.config_environment).

    A missing file is not an error here (`exists` is False): only asking for a
    remote by name is. An unreadable or malformed file raises ConfigFileError (an
    OptionError), naming the file and line but never a value. A file encrypted with
    an rclone config password is decrypted with the password from the environment
    (CLOUDVOL_CONFIG_PASS or RCLONE_CONFIG_PASS).
    """
    env = os.environ if environ is None else environ
    expanded = os.path.abspath(os.path.expanduser(path))
    try:
        with open(expanded, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return with_environment_remotes(missing_config(expanded), env)
    except UnicodeDecodeError:
        raise ConfigFileError(f"config file {expanded} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigFileError(f"config file {expanded}: {exc.strerror}") from None
    if is_encrypted(text):
        password = password_from(env)
        if password is None:
            raise ConfigFileError(
                f"config file {expanded} is encrypted: give its password in"
                " CLOUDVOL_CONFIG_PASS (or RCLONE_CONFIG_PASS), or with --password-command"
            )
        text = decrypt_config(text, password, expanded)
    return with_environment_remotes(parse_rclone_config(text, expanded), env)


class ConfigFileSource:
    """The current content of one config file, re-read when its mtime or size
    changes, so remotes added while the daemon runs are found without a restart.

    Thread-safe; `current()` costs one stat() when nothing changed.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._config: RcloneConfig = missing_config(self.path)

    def current(self) -> RcloneConfig:
        """The config as the file is now. Raises ConfigFileError if it is malformed
        (a later fix of the file is picked up by the next call)."""
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp is None:
                self._stamp, self._config = None, missing_config(self.path)
            elif stamp != self._stamp:
                self._config = load_rclone_config(self.path)
                self._stamp = stamp
            return self._config
