"""Results the user has already measured on their own dataset (`lensroute rank --measured FILE`).

A practitioner often has a baseline run or two before asking which other models to try. Those
few numbers are the one direct clue to which catalogued datasets order models as theirs does:
the ranker sharpens its head-to-head votes towards training datasets whose results agree with
them (`head_to_head.measured_weights`) and lists the measured models in their measured order.
The file is CSV or JSONL with a `model` and a `value` column, values in the query's metric.

Measured on the new-dataset split (seed 0, all of ../shared/data; `tests/bench/bench_measured.py`):
K members of each held-out group revealed, τ_w over the others, without → with them at γ 32 (the
best or near-best γ on the validation datasets for every K):

    K    validation        test
    3    0.667 → 0.680     0.668 → 0.674
    5    0.674 → 0.699     0.666 → 0.674
    8    0.674 → 0.728     0.638 → 0.678
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.errors import FormatError
from recommender.normalise import model_key
from recommender.table_files import read_rows


@dataclass(frozen=True)
class MeasuredResult:
    model: str
    value: float


def read_measured(path: Path) -> list[MeasuredResult]:
    """The rows of a measured-results file; every fault is one `FormatError` line naming the row."""
    rows = read_rows(path, "measured results")
    if not rows or not {"model", "value"} <= set(rows[0]):
        raise FormatError(f"measured results file {path.name} needs 'model' and 'value' columns and at least one row")
    return results_of(rows, lambda number: f"{path.name} row {number}")


def results_of(rows: list, where: Callable[[int], str]) -> list[MeasuredResult]:
    """Measured results from rows like {"model": …, "value": …} (a file's, or a query's JSON
    list); `where(n)` names row n in an error."""
    out: list[MeasuredResult] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise FormatError(f"{where(number)}: a measured result is an object like {{\"model\": …, \"value\": …}}")
        name = str(row.get("model") or "").strip()
        if not name:
            raise FormatError(f"{where(number)}: empty model name")
        raw = row.get("value")
        try:
            if isinstance(raw, bool):  # JSON true is no measurement, though Python reads it as 1
                raise TypeError
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise FormatError(f"{where(number)}: value {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise FormatError(f"{where(number)}: value {raw!r} is not a finite number")
        if (earlier := seen.setdefault(model_key(name), number)) != number:
            raise FormatError(f"{where(number)}: {name} was already measured in row {earlier}")
        out.append(MeasuredResult(name, value))
    return out


def oriented(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Values turned "higher is better" (a loss or an error rate is negated), as the catalogue's z."""
    values = np.asarray(values, np.float64)
    return values if higher_is_better else -values
