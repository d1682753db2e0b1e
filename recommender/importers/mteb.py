"""MTEB results in the layout of `embeddings-benchmark/results`.

`results/<org>__<model>/<revision>/<TaskName>.json`, with an optional `model_meta.json` per
revision. Two file formats occur: the current one (`scores: {split: [{hf_subset, main_score,
…}]}`) and the legacy one of mteb < 1.11 (`{mteb_dataset_name, <split>: {metrics} | {<lang>:
{metrics}}}` with nested `cos_sim`/`euclidean`/… blocks), converted the way mteb itself converts
it. Files may contain bare `NaN`, which Python's json accepts and strict parsers do not.

One row per (model, revision, task): the mean main score over the hf_subsets of one split, chosen
from the task's eval splits (test, then dev, then validation), as in `../shared/data/records`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

from recommender.importers.base import Format, ImportContext, ParsedFile, read_head
from recommender.records import records_frame

SOURCE = "mteb"
# Renames mteb applies when loading historic results (mteb.results.task_result.renamed_tasks).
RENAMED_TASKS = {
    "NorwegianParliament": "NorwegianParliamentClassification",
    "CMedQAv2": "CMedQAv2-reranking",
    "CMedQAv1": "CMedQAv1-reranking",
    "8TagsClustering": "EightTagsClustering",
    "PPC": "PpcPC",
}
_LEGACY_BLOCKS = (("cosine", "cos_sim"), ("manhattan", "manhattan"), ("euclidean", "euclidean"),
                  ("dot", "dot"), ("max", "max"), ("similarity", "similarity"))
_NOT_SUBSETS = {"v_measures", "cos_sim", "euclidean", "manhattan", "dot", "max"}
_SPLIT_PREFERENCE = ("test", "dev", "validation")
_META_FIELDS = {"n_parameters": "n_parameters", "release_date": "release_date", "license": "licence"}


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _task_info(name: str, context: ImportContext) -> tuple[str, dict[str, object] | None]:
    name = RENAMED_TASKS.get(name, name)
    info = context.mteb_tasks.get(name)
    if info is None:  # mteb falls back to a case-insensitive lookup
        lowered = {k.lower(): k for k in context.mteb_tasks}
        if name.lower() in lowered:
            name = lowered[name.lower()]
            info = context.mteb_tasks[name]
    return name, info


def _legacy_scores(data: dict, main_score: str | None) -> dict[str, list[dict]]:
    """mteb's `_convert_from_before_v1_11_0`: {split: {subset: scores}} with flattened blocks."""
    splits = {k: v for k, v in data.items()
              if k not in ("dataset_revision", "mteb_dataset_name", "mteb_version") and isinstance(v, dict)}
    for split_scores in splits.values():
        split_scores.pop("evaluation_time", None)
    has_subsets = any(isinstance(v, dict) for s in splits.values() for k, v in s.items() if k not in _NOT_SUBSETS)
    if not has_subsets:
        splits = {split: {"default": dict(scores)} for split, scores in splits.items()}
    out: dict[str, list[dict]] = {}
    for split, subsets in splits.items():
        entries = []
        for subset, scores in subsets.items():
            if not isinstance(scores, dict):
                continue
            scores = dict(scores)
            for new, old in _LEGACY_BLOCKS:
                block = scores.pop(old, None)
                if isinstance(block, dict):
                    for key, value in block.items():
                        scores[f"{new}_{key}"] = value
            if "main_score" not in scores:
                scores["main_score"] = scores.get(main_score) if main_score else None
            entries.append({**scores, "hf_subset": subset})
        out[split] = entries
    return out


def _choose_split(available: list[str], eval_splits: list[str]) -> str | None:
    candidates = [s for s in eval_splits if s in available]
    for preferred in _SPLIT_PREFERENCE:
        if preferred in candidates:
            return preferred
    if candidates:
        return candidates[0]
    for preferred in _SPLIT_PREFERENCE:
        if preferred in available:
            return preferred
    return available[0] if available else None


def parse_task_file(
    path: Path, model: str, revision: str, context: ImportContext
) -> tuple[dict[str, object] | None, str | None]:
    """One task file → one record row, or (None, reason) when it yields none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        return None, f"unreadable MTEB result {path.name}: {str(exc).splitlines()[0]}"
    if not isinstance(data, dict):
        return None, f"not an MTEB result object: {path.name}"
    raw_name = data.get("task_name") or data.get("mteb_dataset_name")
    if not isinstance(raw_name, str):
        return None, f"MTEB result without a task name: {path.name}"
    task, info = _task_info(raw_name, context)
    main_score = str(info["main_score"]) if info and info.get("main_score") else None
    if isinstance(data.get("scores"), dict):
        scores = data["scores"]
    elif "mteb_dataset_name" in data:
        scores = _legacy_scores(data, main_score)
    else:
        return None, f"MTEB result without scores: {path.name}"
    eval_splits = [str(s) for s in (info or {}).get("eval_splits") or []]  # type: ignore[union-attr]
    available = [s for s, entries in scores.items() if isinstance(entries, list) and entries]
    split = _choose_split(available, eval_splits)
    if split is None:
        return None, "MTEB result with no split holding scores"
    values = [e.get("main_score") for e in scores[split] if isinstance(e, dict)]
    finite = [float(v) for v in values if _finite(v)]
    if not finite:
        return None, "MTEB result without a usable main score (like mteb, no row)"
    return {
        "source": context.source or SOURCE,
        "model": model,
        "model_revision": revision,
        "dataset": task,
        "task": (info or {}).get("type") or "unknown",
        "metric": main_score or "main_score",
        "value": sum(finite) / len(finite),
        "higher_is_better": True,
        "split": split,
        "subset": None,
        "evaluated_at": None,
        "source_ref": str(path),
    }, None


# --- model directories --------------------------------------------------------------------------


def _read_meta(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, OSError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _model_identity(model_dir: Path) -> tuple[str, dict | None]:
    """Name from this directory's model_meta.json files (densest first), else from the folder."""
    metas = [m for m in (_read_meta(p) for p in sorted(model_dir.glob("*/model_meta.json"))) if m]
    metas.sort(key=lambda m: sum(v not in (None, [], {}) for v in m.values()), reverse=True)
    for meta in metas:
        if isinstance(meta.get("name"), str) and meta["name"].strip():
            return meta["name"].strip(), meta
    return model_dir.name.replace("__", "/", 1), (metas[0] if metas else None)


def _model_meta_row(name: str, meta: dict) -> dict[str, object]:
    row: dict[str, object] = {"model": name}
    for key, column in _META_FIELDS.items():
        if meta.get(key) is not None:
            row[column] = meta[key]
    extra_keys = ("languages", "embed_dim", "max_tokens", "open_weights", "framework", "reference",
                  "similarity_fn_name", "use_instructions", "modalities", "memory_usage_mb",
                  "is_cross_encoder", "adapted_from", "superseded_by")
    extra = {k: meta[k] for k in extra_keys if meta.get(k) not in (None, [], {})}
    if extra:
        row["extra"] = {"mteb": extra}
    return row


def parse_model_dir(model_dir: Path, context: ImportContext, only: list[Path] | None = None) -> ParsedFile:
    parsed = ParsedFile()
    name, meta = _model_identity(model_dir)
    if meta:
        parsed.models.append(_model_meta_row(name, meta))
    rows = []
    files = only if only is not None else sorted(model_dir.glob("*/*.json"))
    for task_file in files:
        if task_file.name == "model_meta.json":
            continue
        row, reason = parse_task_file(task_file, name, task_file.parent.name, context)
        if row is not None:
            rows.append(row)
        elif reason:
            parsed.rejected.add(reason)
    parsed.records = records_frame(rows)
    return parsed


def _results_root(path: Path) -> Path | None:
    """The folder whose children are `<org>__<model>` folders, if `path` is or holds one."""
    for candidate in (path / "results", path):
        if candidate.is_dir() and any(
            child.is_dir() and any(child.glob("*/*.json")) for child in candidate.iterdir()
        ):
            return candidate
    return None


def _is_model_dir(path: Path) -> bool:
    return (path.is_dir() and any(path.glob("*/model_meta.json"))) or (
        path.is_dir() and "__" in path.name and any(path.glob("*/*.json"))
    )


def _sniff_tree(path: Path) -> bool:
    if not path.is_dir():
        return False
    if _is_model_dir(path):
        return True
    root = _results_root(path)
    if root is None:
        return False
    sample = next(root.glob("*/*/*.json"), None)
    return sample is not None and _sniff_task_file(sample)


def _model_dirs(path: Path) -> list[Path]:
    """The units of a results tree: one folder per model (or the model folder given)."""
    if _is_model_dir(path):
        return [path]
    root = _results_root(path)
    assert root is not None
    return sorted(p for p in root.iterdir() if p.is_dir())


def _parse_tree(path: Path, context: ImportContext) -> Iterator[tuple[str, ParsedFile]]:
    for model_dir in _model_dirs(path):
        yield str(model_dir), parse_model_dir(model_dir, context)


def _sniff_task_file(path: Path) -> bool:
    if path.suffix.lower() != ".json" or path.name == "model_meta.json":
        return False
    head = read_head(path, 2048)
    return ('"task_name"' in head and '"scores"' in read_head(path, 1 << 20)) or '"mteb_dataset_name"' in head


def _parse_task_path(path: Path, context: ImportContext) -> Iterator[tuple[str, ParsedFile]]:
    """A lone task file: the model comes from the folders above it, as in the results repo."""
    yield str(path), parse_model_dir(path.parent.parent, context, only=[path])


FORMATS = (
    Format("mteb-results", "MTEB results tree (results/<org__model>/<revision>/<Task>.json)", _sniff_tree, _parse_tree, is_tree=True,
           count_units=lambda p: len(_model_dirs(p))),
    Format("mteb-result-json", "one MTEB task result file inside a results tree", _sniff_task_file, _parse_task_path),
)
