"""Model and dataset metadata files: `meta/models.jsonl` and `meta/mteb_tasks.jsonl` (plain or
gzipped, the seed catalogue ships slimmed copies in the same shapes)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from recommender.errors import FormatError
from recommender.importers.base import Format, ImportContext, ParsedFile, single

# Fields of a models.jsonl object that have their own column; everything else goes to `extra`.
_MODEL_COLUMNS = {"n_parameters": "n_parameters", "release_date": "release_date", "license": "licence", "family": "family"}
# Task metadata kept on a dataset row (descriptive statistics are summarised, not copied whole).
_TASK_EXTRA = (
    "category", "domains", "eval_langs", "modalities", "eval_splits", "n_samples", "avg_text_length",
    "n_labels", "license", "task_subtypes", "hf_dataset", "reference", "superseded_by",
    "is_aggregate", "n_hf_subsets", "date", "annotations_creators", "sample_creation",
)


def _open_text(path: Path):  # type: ignore[no-untyped-def]
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open(encoding="utf-8-sig")


def _objects(path: Path) -> Iterator[tuple[int, dict]]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except ValueError as exc:
                    raise FormatError(f"line {number}: invalid JSON ({exc})") from exc


def _first_keys(path: Path) -> set[str]:
    try:
        for _, obj in _objects(path):
            return set(obj)
    except (FormatError, OSError, UnicodeDecodeError, EOFError):
        return set()
    return set()


def _is_jsonl(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".jsonl", ".jsonl.gz", ".ndjson"))


def model_meta_row(obj: dict) -> dict[str, object]:
    row: dict[str, object] = {"model": obj["model"]}
    for source_key, column in _MODEL_COLUMNS.items():
        if obj.get(source_key) is not None:
            row[column] = obj[source_key]
    extra = {k: v for k, v in obj.items() if k not in _MODEL_COLUMNS and k != "model" and v not in (None, [], {})}
    if extra:
        row["extra"] = extra
    return row


def _parse_models(path: Path, context: ImportContext) -> ParsedFile:
    parsed = ParsedFile()
    for number, obj in _objects(path):
        if not isinstance(obj.get("model"), str) or not obj["model"].strip():
            parsed.rejected.add(f"model metadata without a model name (line {number})")
            continue
        parsed.models.append(model_meta_row(obj))
    return parsed


def dataset_meta_row(obj: dict) -> dict[str, object]:
    extra = {k: obj[k] for k in _TASK_EXTRA if obj.get(k) not in (None, [], {})}
    return {
        "dataset": obj["name"],
        "task_type": obj.get("type"),
        "description": obj.get("description"),
        "main_metric": obj.get("main_score"),
        "extra": extra or None,
    }


def _parse_tasks(path: Path, context: ImportContext) -> ParsedFile:
    parsed = ParsedFile()
    for number, obj in _objects(path):
        if not isinstance(obj.get("name"), str):
            parsed.rejected.add(f"task metadata without a name (line {number})")
            continue
        row = dataset_meta_row(obj)
        parsed.datasets.append(row)
        context.mteb_tasks[row["dataset"]] = {  # later files of the same import can use it
            "type": row["task_type"], "main_score": row["main_metric"],
            "eval_splits": obj.get("eval_splits") or [],
        }
    return parsed


FORMATS = (
    Format(
        "models-jsonl", "model metadata (meta/models.jsonl)",
        lambda p: _is_jsonl(p) and {"model", "sources"} <= _first_keys(p), single(_parse_models),
    ),
    Format(
        "mteb-tasks-jsonl", "MTEB task metadata (meta/mteb_tasks.jsonl)",
        lambda p: _is_jsonl(p) and {"name", "type", "main_score"} <= _first_keys(p), single(_parse_tasks),
    ),
)
