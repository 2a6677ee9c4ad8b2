"""Integration tests use real parts: FUSE, OpenSSH's sshd, dockerd. They run as root."""

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _needs_root() -> None:
    # Not a skip: CI runs as root, and a run without it must fail loudly.
    assert os.geteuid() == 0, "integration tests need root (FUSE mounts, dockerd, sshd)"
