"""What an import found, per unit and in total: plain counts, no data frames.

Kept free of polars and SQLAlchemy on purpose: re-importing files that have not changed is
answered from the store without parsing anything (`recommender.unchanged_files`), and that
path should not pay for loading the data libraries just to describe its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Rejected:
    """Rows an importer could not use, each with a reason the user can act on, and the first
    such row as an example: "12 value not a number" alone does not say which rows to fix."""

    reasons: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)  # reason → the first row rejected for it

    def add(self, reason: str, count: int = 1, example: str | None = None) -> None:
        if count:
            self.reasons[reason] = self.reasons.get(reason, 0) + count
            if example is not None:
                self.examples.setdefault(reason, example)

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def merge(self, other: Rejected) -> None:
        for reason, count in other.reasons.items():
            self.add(reason, count, other.examples.get(reason))

    def describe(self, most: int = 3) -> str:
        """The commonest reasons with their counts and an example each, for one line of a report."""
        top = sorted(self.reasons.items(), key=lambda kv: -kv[1])[:most]
        return "; ".join(f"{n:,} {reason}" + (f", e.g. {self.examples[reason]}" if reason in self.examples else "")
                         for reason, n in top)


@dataclass
class WriteCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: Rejected = field(default_factory=Rejected)
    models_added: int = 0
    datasets_added: int = 0
    warnings: list[str] = field(default_factory=list)

    def merge(self, other: WriteCounts) -> None:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected.merge(other.rejected)
        self.models_added += other.models_added
        self.datasets_added += other.datasets_added
        self.warnings.extend(other.warnings)

    def as_dict(self) -> dict[str, object]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected.total,
            "rejected_reasons": dict(self.rejected.reasons),
            "rejected_examples": dict(self.rejected.examples),
            "models_added": self.models_added,
            "datasets_added": self.datasets_added,
        }


@dataclass
class UnitResult:
    label: str
    format: str
    target: str = ""  # the path as named on the command line (a tree yields many units)
    counts: WriteCounts = field(default_factory=WriteCounts)
    error: str | None = None
    seconds: float = 0.0
    not_read: bool = False  # answered from the store: the file's bytes match its last import

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ImportReport:
    units: list[UnitResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cancelled: bool = False

    @property
    def failed(self) -> list[UnitResult]:
        return [u for u in self.units if not u.ok]

    def totals(self) -> WriteCounts:
        total = WriteCounts()
        for unit in self.units:
            if unit.ok:
                total.merge(unit.counts)
        return total
