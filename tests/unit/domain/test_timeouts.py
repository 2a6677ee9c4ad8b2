"""rclone's --timeout and --contimeout: from the flags and -o options to the
backend's connections."""

import math

import pytest

from domain.errors import OptionError
from domain.volume import Timeouts
from domain.volume_options import parse_volume_options

SFTP = {"type": "sftp", "sftp-host": "files.example.org", "path": "/srv"}


def test_rclone_defaults_reach_the_backend() -> None:
    spec = parse_volume_options(SFTP, {}).spec
    assert spec.backend.timeouts == Timeouts(connect=60.0, io_idle=300.0)
    assert (spec.vfs.connect_timeout, spec.vfs.io_timeout) == (60.0, 300.0)


def test_a_volume_option_overrides_the_daemon_flag() -> None:
    spec = parse_volume_options({**SFTP, "timeout": "30s"}, {"timeout": "1m", "contimeout": "5s"})
    assert spec.spec.backend.timeouts == Timeouts(connect=5.0, io_idle=30.0)


def test_zero_and_off_mean_no_limit() -> None:
    backend = parse_volume_options({**SFTP, "timeout": "0", "contimeout": "off"}, {}).spec.backend
    assert backend.timeouts.io_idle == 0 and math.isinf(backend.timeouts.connect)
    assert Timeouts.limit(backend.timeouts.io_idle) is None
    assert Timeouts.limit(backend.timeouts.connect) is None
    assert Timeouts.limit(2.5) == 2.5


def test_a_malformed_timeout_is_refused_by_name() -> None:
    with pytest.raises(OptionError, match="contimeout"):
        parse_volume_options({**SFTP, "contimeout": "soon"}, {})
