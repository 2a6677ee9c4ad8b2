"""How a volume's remote is shown to an operator (`cloudvol status`): as a
connection string with every secret option's value hidden."""

from __future__ import annotations

from domain.backends import is_secret_option
from domain.volume import BackendSpec

HIDDEN = "***"


def describe_remote(backend: BackendSpec) -> str:
    """`:sftp,host=h,pass=***,user=u:/srv`: options sorted, secrets hidden, empty
    ones left out."""
    shown = [
        f"{key}={HIDDEN if is_secret_option(key) else value}"
        for key, value in sorted(backend.options.items())
        if value != ""
    ]
    options = "," + ",".join(shown) if shown else ""
    return f":{backend.type}{options}:{backend.root}"
