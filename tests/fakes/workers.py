"""A fake `WorkerAdmin` (application.operations): workers answering control
requests from a script, for the admin API's tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from application.operations import WorkerRequestFailed


@dataclass
class FakeWorkerAdmin:
    """`stats[name]` is a live worker's stats reply; `requests` records each call."""

    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # op -> error message

    def live_workers(self) -> list[str]:
        return sorted(self.stats)

    async def request(self, name: str, op: str, **fields: Any) -> dict[str, Any]:
        self.requests.append((name, op, fields))
        if name not in self.stats:
            raise WorkerRequestFailed(f"no mount worker answered for {name}")
        if op in self.refuse:
            raise WorkerRequestFailed(self.refuse[op])
        if op == "stats":
            return {"stats": self.stats[name]}
        if op == "forget-path":
            return {"forgotten": fields["path"], "found": True}
        if op == "refresh":
            return {"refreshed": fields["dir"] or "/", "listings": 1}
        return {}
