"""How a volume's remote is shown to an operator (`cloudvol status`): as a
connection string with every secret option's value hidden."""

from __future__ import annotations

from domain.backends import BackendValue, find_backend, is_secret_option
from domain.errors import OptionError
from domain.volume import BackendSpec

HIDDEN = "***"


def describe_remote(backend: BackendSpec) -> str:
    """`:sftp,host=h,pass=***,user=u:/srv`: options sorted, secrets hidden; empty
    ones and those at their declared default left out."""
    defaults = _defaults(backend.type)
    shown = [
        f"{key}={HIDDEN if is_secret_option(key) else value}"
        for key, value in sorted(backend.options.items())
        if value != "" and (key not in defaults or defaults[key] != value)
    ]
    options = "," + ",".join(shown) if shown else ""
    return f":{backend.type}{options}:{backend.root}"


def _defaults(backend_type: str) -> dict[str, BackendValue | None]:
    try:
        return {decl.name: decl.default for decl in find_backend(backend_type).options}
    except OptionError:
        return {}
