"""The latest evaluation of each split and seed, kept under LENSROUTE_HOME.

An evaluation trains a ranker per split and takes minutes on a full catalogue; keeping the last
table of each split lets the GUI show every split side by side, and lets a table measured from the
CLI appear there too, without running it again. Each entry carries when it ran and on which
database and data (fingerprint), so a stale table is recognisable as such.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.paths import home_dir

if TYPE_CHECKING:  # reading the log must not need torch (the frozen app shows it without)
    from recommender.evaluation import EvaluationReport

FILE_NAME = "evaluations.json"


def log_path() -> Path:
    return home_dir() / FILE_NAME


def entry_key(split: str, seed: int) -> str:
    return f"{split}:{seed}"


def load_reports(path: Path | None = None) -> dict[str, dict]:
    """"split:seed" → its latest report (as `EvaluationReport.as_json()` plus `evaluated_at`, `database`).
    An unreadable file counts as empty: it only caches tables that can be measured again."""
    path = path or log_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, dict] = {}
    for value in data.values():
        if not (isinstance(value, dict) and "methods" in value and "split" in value):
            continue
        key = entry_key(str(value["split"]), int(value.get("seed", 0)))
        if key not in out or str(value.get("evaluated_at", "")) >= str(out[key].get("evaluated_at", "")):
            out[key] = value
    return out


def task_breakdown(report: dict) -> tuple[list[str], list[int], dict[str, list[float | None]]]:
    """A report's (`EvaluationReport.as_json()`) τw per task type and method: the task types (most
    test groups first), their group counts, and per method with a breakdown its τw on each; empty
    for a report stored before the breakdown existed. What `evaluate --by-task` prints and the GUI
    shows."""
    methods = [m for m in report.get("methods", []) if m.get("by_task")]
    if not methods:
        return [], [], {}
    tasks = list(methods[0]["by_task"])
    counts = [int(methods[0]["by_task"][t]["groups"]) for t in tasks]
    return tasks, counts, {m["method"]: [m["by_task"].get(t, {}).get("tau_w") for t in tasks] for m in methods}


def save_reports(reports: list[EvaluationReport], database: str, path: Path | None = None) -> tuple[dict[str, dict], str | None]:
    """Replace the stored entry of each report's split and seed (atomically). Returns the whole log,
    and why it could not be written (None when it was): the log only caches tables, so a full disk
    or a read-only home must not cost the caller the evaluation it just ran."""
    path = path or log_path()
    stored = load_reports(path)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for report in reports:
        stored[entry_key(report.split, report.seed)] = {**report.as_json(), "evaluated_at": now, "database": database}
    partial = path.with_suffix(".partial")
    try:
        partial.write_text(json.dumps(stored, indent=1, default=str), encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        return stored, f"could not keep the evaluation tables in {path}: {exc.strerror or exc}"
    return stored, None
