"""Benchmark results and the Markdown table they are reported in.

Every figure of cloudvol is compared with a reference measured in the same run
(rclone 1.60.1, sshfs, the local disk), as a ratio oriented so that above 1 means
cloudvol is better: faster, quicker or lighter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """One measured value, or why there is none."""

    value: float | None = None
    note: str = ""  # "failed: ...", "not delivered within 60 s", "one run"...

    @classmethod
    def failed(cls, error: BaseException | str) -> Figure:
        text = " ".join(str(error).split()) or type(error).__name__
        return cls(None, f"failed: {text[:160]}")

    def show(self, digits: int) -> str:
        if self.value is None:
            return self.note or "-"
        text = f"{self.value:.{digits}f}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class Comparison:
    reference: str  # "rclone (off)", "sshfs", "local disk"...
    figure: Figure
    goal: str = ""  # the target for the ratio, e.g. ">= 1.3x"


@dataclass
class Result:
    scenario: str
    unit: str  # "MiB/s", "s", "MiB"
    higher_is_better: bool
    cloudvol: Figure
    comparisons: list[Comparison] = field(default_factory=list)
    digits: int = 2

    def ratio(self, other: Figure) -> str:
        ours, theirs = self.cloudvol.value, other.value
        if ours is None:
            return "-"
        if theirs is None:
            # Only a reference that never delivered loses by default.
            return "cloudvol only" if other.note.startswith("not delivered") else "-"
        if ours <= 0 or theirs <= 0:
            return "-"
        value = ours / theirs if self.higher_is_better else theirs / ours
        return f"{value:.2f}x"


def render(results: list[Result], command: str, summary: str, environment: str) -> str:
    lines = [
        f"### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {summary}",
        "",
        f"Command: `{command}`",
        "",
        environment,
        "",
        "Ratio: how many times better cloudvol is than the reference (faster, or less"
        " memory); above 1 cloudvol wins. Goal: the target from issue 4"
        " (SFTP rows) or issue 3 (rows marked S3).",
        "",
        "| scenario | unit | cloudvol | reference | reference's figure | ratio | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ours = r.cloudvol.show(r.digits)
        if not r.comparisons:
            lines.append(f"| {r.scenario} | {r.unit} | {ours} | - | - | - | - |")
        for i, c in enumerate(r.comparisons):
            first = i == 0
            lines.append(
                f"| {r.scenario if first else ''} | {r.unit if first else ''} | "
                f"{ours if first else ''} | {c.reference} | {c.figure.show(r.digits)} | "
                f"{r.ratio(c.figure)} | {c.goal or '-'} |"
            )
    return "\n".join(lines) + "\n"
