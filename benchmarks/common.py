"""What every section shares: latency statistics, the printed tables, and targets."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "BACKENDS",
    "Latencies",
    "Section",
    "Target",
    "fmt",
    "ratio",
    "render_table",
]

BACKENDS = ("sqlite", "postgresql")


@dataclass
class Latencies:
    """Samples in seconds; figures come out in milliseconds."""

    samples: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    def extend(self, other: Latencies) -> None:
        self.samples.extend(other.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def pct_ms(self, q: float) -> float:
        """Nearest-rank percentile: a value that was actually observed."""
        if not self.samples:
            return math.nan
        ordered = sorted(self.samples)
        rank = max(1, math.ceil(q / 100.0 * len(ordered)))
        return ordered[rank - 1] * 1000.0

    def mean_ms(self) -> float:
        return statistics.fmean(self.samples) * 1000.0 if self.samples else math.nan


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0 or math.isnan(numerator):
        return None
    return numerator / denominator


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}" if digits <= 1 else f"{value:.1f}"
    return f"{value:.{digits}f}"


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the figures right-aligned."""
    body = [list(r) for r in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in body)])


@dataclass
class Section:
    """One printed table plus the figures the targets read."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, *cells: str) -> None:
        self.rows.append(list(cells))

    def render(self) -> str:
        parts = [self.title, "=" * len(self.title), render_table(self.headers, self.rows)]
        parts += [f"  note: {n}" for n in self.notes]
        return "\n".join(parts)


@dataclass(frozen=True)
class Target:
    """A limit on one measured figure. ``measured`` None means the row was skipped."""

    name: str
    measured: float | None
    limit: float
    unit: str
    at_most: bool = True

    @property
    def verdict(self) -> str:
        if self.measured is None or math.isnan(self.measured):
            return "SKIP"
        ok = self.measured <= self.limit if self.at_most else self.measured >= self.limit
        return "PASS" if ok else "FAIL"

    def line(self) -> str:
        op = "<=" if self.at_most else ">="
        limit = f"{op} {fmt(self.limit)}"
        return f"{self.verdict:4}  {self.name}: {fmt(self.measured)} {self.unit} ({limit})"
