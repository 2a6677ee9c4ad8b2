"""Which volumes still have a live mount worker, from the worker locks on disk.

A worker holds `<cache-dir>/workers/<volume>.lock` for as long as it runs, and after
an unmount it runs until its volume's last upload is done, so this also answers
"which volumes are still uploading" once the daemon has unmounted everything.
"""

from __future__ import annotations

import os

from adapters.mounting.protocol import worker_paths
from adapters.mounting.system import lock_holder

_LOCK_SUFFIX = ".lock"


def volumes_with_live_workers(cache_dir: str) -> list[str]:
    directory = worker_paths(cache_dir, "_").directory
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    return [
        name.removesuffix(_LOCK_SUFFIX)
        for name in names
        if name.endswith(_LOCK_SUFFIX) and lock_holder(os.path.join(directory, name)) is not None
    ]
