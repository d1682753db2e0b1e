"""Aider leaderboards: `aider/website/_data/{polyglot,edit,refactor}_leaderboard.yml`."""

from __future__ import annotations

import math
from pathlib import Path

from recommender.errors import FormatError
from recommender.importers.base import Format, ImportContext, ParsedFile, read_head, single
from recommender.records import records_frame

SOURCE = "aider"
DATASET_BY_FILE = {
    "polyglot_leaderboard": "aider-polyglot",
    "edit_leaderboard": "aider-code-editing",
    "refactor_leaderboard": "aider-refactoring",
}
# metric -> higher_is_better
METRICS = {
    "pass_rate_1": True, "pass_rate_2": True, "percent_cases_well_formed": True,
    "total_cost": False, "seconds_per_case": False,
}
VARIANT_KEYS = ("edit_format", "reasoning_effort", "thinking_tokens", "editor_model", "editor_edit_format")


def _variant(entry: dict) -> str | None:
    parts = [f"{key}={entry[key]}" for key in VARIANT_KEYS if entry.get(key) not in (None, "")]
    return ";".join(parts) or None


def _parse(path: Path, context: ImportContext) -> ParsedFile:
    import yaml  # 8 ms of start-up, paid only by the files that are YAML

    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        raise FormatError(f"invalid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(entries, list):
        raise FormatError("an Aider leaderboard is a YAML list of runs")
    dataset = DATASET_BY_FILE.get(path.stem, f"aider-{path.stem.removesuffix('_leaderboard')}")
    parsed = ParsedFile()
    rows = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("model"):
            parsed.rejected.add("Aider run without a model")
            continue
        date = entry.get("date")
        for metric, higher in METRICS.items():
            value = entry.get(metric)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            rows.append({
                "source": context.source or SOURCE, "model": str(entry["model"]).strip(),
                "model_revision": _variant(entry), "dataset": dataset, "task": "code-editing",
                "metric": metric, "value": float(value), "higher_is_better": higher,
                "split": None, "subset": None, "evaluated_at": None if date is None else str(date),
                "source_ref": str(path),
            })
        command = str(entry.get("command") or "")
        if "--model " in command:
            parsed.models.append({"model": str(entry["model"]).strip(),
                                  "extra": {"aider": {"model_argument": command.split("--model ", 1)[1].split()[0]}}})
    parsed.records = records_frame(rows)
    return parsed


def _sniff(path: Path) -> bool:
    if path.suffix.lower() not in (".yml", ".yaml"):
        return False
    head = read_head(path, 4096)
    return "pass_rate_1" in head or ("dirname:" in head and "test_cases:" in head)


FORMATS = (Format("aider-yaml", "Aider leaderboard YAML", _sniff, single(_parse)),)
