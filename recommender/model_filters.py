"""Constraints a practitioner puts on the ranking: a size budget, acceptable licences, open weights.

A ranking answers "which model will do best here", but the answer is useless if the winner does
not fit the user's GPU, cannot be used commercially, or is only reachable through someone's API.
The filters drop candidates *before* scoring and head-to-head, so the ranks shown are ranks among
the models the user can actually take.

Metadata is sparse (most catalogued models have no recorded licence), so each filter drops only
what it *knows* breaks the constraint and keeps the unknowns, counted in a note; `require_known`
drops the unknowns too, for users who must be sure (licence compliance).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recommender.errors import UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*([kmbt]?)\s*$", re.IGNORECASE)
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
# spellings of "no licence recorded" seen in MTEB and Hub metadata
_NO_LICENCE = {"", "not specified", "unspecified", "unknown", "none", "n/a", "null"}
# common non-SPDX spellings of the same licence, so `--licence apache-2.0` keeps `apache-2`
_LICENCE_ALIASES = {"apache-2": "apache-2.0", "apache 2.0": "apache-2.0", "apache2": "apache-2.0",
                    "apache license 2.0": "apache-2.0", "mit license": "mit", "bsd-3": "bsd-3-clause"}


def parse_size(text: str, label: str = "--max-params") -> float:
    """'350M', '7B', '1.5b', '500k', '2e9' → parameters; anything else is a usage error naming
    `label` (the option, or the GUI field)."""
    match = _SIZE.match(str(text))
    value = float(match.group(1)) * _SCALE[match.group(2).lower()] if match else math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{label} {text!r}: give a positive size such as 350M, 7B or 1.5e9")
    return value


def normalise_licence(value: object) -> str | None:
    """A licence as compared by the filter (lower-case SPDX-style id); None when none is recorded."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in _NO_LICENCE:
        return None
    return _LICENCE_ALIASES.get(text, text)


def parse_licences(values: Sequence[str], label: str = "--licence") -> tuple[str, ...]:
    """`--licence` values, repeated or comma-separated."""
    out: list[str] = []
    for value in values:
        for part in str(value).split(","):
            licence = normalise_licence(part)
            if licence is not None and licence not in out:
                out.append(licence)
    if values and not out:
        raise UsageError(f"{label}: name at least one licence, e.g. apache-2.0,mit")
    return tuple(out)


def describe_size(parameters: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if parameters >= scale:
            return f"{parameters / scale:.3g}{suffix}"
    return f"{parameters:.3g}"


def describe_facts(n_parameters: float | None, licence: str | None, open_weights: bool | None) -> list[str]:
    """What is known of a ranked model's size, licence and openness, for people to read."""
    facts = [] if n_parameters is None else [describe_size(n_parameters)]
    if licence:
        facts.append(licence)
    if open_weights is not None:
        facts.append("open weights" if open_weights else "API only")
    return facts


@dataclass(frozen=True)
class ModelFilter:
    max_parameters: float | None = None
    licences: tuple[str, ...] = ()
    open_weights: bool = False
    require_known: bool = False

    @property
    def active(self) -> bool:
        return self.max_parameters is not None or bool(self.licences) or self.open_weights

    def as_json(self) -> dict:
        return {"max_parameters": self.max_parameters, "licences": list(self.licences),
                "open_weights": self.open_weights, "require_known": self.require_known}

    def keep(self, sizes: np.ndarray, licences: Sequence[str | None], open_weights: np.ndarray) -> FilterOutcome:
        """Which candidates pass. `sizes`: parameters (NaN unknown); `licences`: normalised (None
        unknown); `open_weights`: 1 open, 0 closed (API only), -1 unknown."""
        n = len(sizes)
        keep = np.ones(n, bool)
        outcome = FilterOutcome(keep)
        if self.max_parameters is not None:
            unknown = np.isnan(sizes)
            outcome.dropped["too large"] = int((~unknown & (sizes > self.max_parameters)).sum())
            keep &= unknown | (sizes <= self.max_parameters)
            self._unknowns(outcome, keep, unknown, "of unknown size")
        if self.licences:
            unknown = np.array([lic is None for lic in licences], bool)
            allowed = np.array([lic in self.licences for lic in licences], bool)
            outcome.dropped["another licence"] = int((keep & ~unknown & ~allowed).sum())
            keep &= unknown | allowed
            self._unknowns(outcome, keep, unknown, "with no recorded licence")
        if self.open_weights:
            unknown = open_weights < 0
            outcome.dropped["API only"] = int((keep & (open_weights == 0)).sum())
            keep &= open_weights != 0
            self._unknowns(outcome, keep, unknown, "not recorded as open or closed")
        return outcome

    def _unknowns(self, outcome: FilterOutcome, keep: np.ndarray, unknown: np.ndarray, what: str) -> None:
        count = int((keep & unknown).sum())
        if not count:
            return
        if self.require_known:
            outcome.dropped[what] = count
            keep &= ~unknown
        else:
            outcome.kept_unknown[what] = count


def filter_from(max_params: str | None, licences: Sequence[str], open_weights: bool, require_known: bool, *,
                size_label: str = "--max-params", licence_label: str = "--licence") -> ModelFilter | None:
    """The filter the user's text asks for (the CLI's options, the GUI's fields), None when it
    asks for none; bad text is a usage error naming the option or field it came from."""
    constraint = ModelFilter(parse_size(max_params, size_label) if max_params is not None else None,
                             parse_licences(licences, licence_label), open_weights, require_known)
    return constraint if constraint.active else None


@dataclass
class FilterOutcome:
    keep: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)  # reason → candidates dropped for it
    kept_unknown: dict[str, int] = field(default_factory=dict)  # what is unknown → candidates kept anyway

    def notes(self, constraint: ModelFilter) -> list[str]:
        parts = []
        if constraint.max_parameters is not None:
            parts.append(f"at most {describe_size(constraint.max_parameters)} parameters")
        if constraint.licences:
            parts.append(f"licence {' or '.join(constraint.licences)}")
        if constraint.open_weights:
            parts.append("open weights")
        dropped = sum(self.dropped.values())
        reasons = ", ".join(f"{count:,} {reason}" for reason, count in self.dropped.items() if count)
        notes = [f"filters ({'; '.join(parts)}): dropped {dropped:,} candidate(s)" + (f" ({reasons})" if reasons else "")]
        for what, count in self.kept_unknown.items():
            notes.append(f"kept {count:,} candidate(s) {what}: the filter cannot check them (--require-known drops them)")
        return notes
