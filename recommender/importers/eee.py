"""Every Eval Ever (EEE schema 0.2.x): `data/<board>/<developer>/<model>/<uuid>.json`.

One file holds one model's results on one board (HELM, Open LLM Leaderboard v2, RewardBench,
Global-MMLU-Lite, LiveCodeBench Pro, HAL agent boards). The per-board rules for dataset, subset,
metric and variant follow `../shared/data/README.md` (§ every_eval_ever), so importing the raw tree
reproduces `records/every_eval_ever.parquet`.

Clean-up, as the shared data does it: HELM's -1 "not evaluated" cells are dropped; when the same
key was scraped more than once the latest `retrieved_timestamp` wins, and when several files
share one key *and* one timestamp but disagree (a truncated model id naming several
checkpoints), none of them is trusted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from recommender.importers.base import Format, ImportContext, ParsedFile, read_head
from recommender.records import Rejected, records_frame

SOURCE = "every_eval_ever"
_HELM_MEANS = {"Mean win rate", "Mean score"}
_TASK_BY_BOARD = (
    ("hal-", "agentic"), ("livecodebench", "code-generation"), ("reward-bench", "reward-modeling"),
    ("helm", "text-generation"), ("hfopenllm", "text-generation"), ("global-mmlu", "text-generation"),
)


def _task(board: str) -> str | None:
    for prefix, task in _TASK_BY_BOARD:
        if board.startswith(prefix):
            return task
    return None


def _metric_before_on(description: str | None, fallback: str) -> str:
    if not description:
        return fallback
    return description.split(" on ", 1)[0].strip() or fallback


def _hal_metric(description: str) -> str:
    lowered = description.lower()
    if lowered.startswith("fraction of"):
        return "Fraction solved"
    if "accuracy" in lowered:
        return "Accuracy"
    head = re.split(r" on |\(", description, maxsplit=1)[0].strip()
    return head[:1].upper() + head[1:] if head else "score"


def _variant(board: str, info: dict) -> str | None:
    details = info.get("additional_details") or {}
    if board == "hfopenllm_v2" and details.get("precision"):
        return f"precision={details['precision']}"
    if board.startswith("hal-"):
        parts = []
        if details.get("agent_scaffold"):
            parts.append(f"scaffold={details['agent_scaffold']}")
        if details.get("inference_effort"):
            parts.append(f"effort={details['inference_effort']}")
        if details.get("hal_model_name"):
            parts.append(f"hal_model={details['hal_model_name']}")
        return ";".join(parts) or None
    return None


def _placement(board: str, result: dict) -> tuple[str, str | None, str]:
    """(dataset, subset, metric) of one evaluation result under the board's rules."""
    name = str(result.get("evaluation_name") or "")
    dataset_name = str((result.get("source_data") or {}).get("dataset_name") or "")
    description = str((result.get("metric_config") or {}).get("evaluation_description") or "")
    if board == "helm_mmlu":
        return "helm_mmlu/MMLU", None if name == "MMLU All Subjects" else name, _metric_before_on(description, name)
    if board.startswith("helm"):
        if name in _HELM_MEANS or dataset_name == board:
            return board, None, name
        return f"{board}/{name}", None, _metric_before_on(description, name)
    if board == "global-mmlu-lite":
        return board, None if name == "Global MMLU Lite" else name, "accuracy"
    if board == "reward-bench":
        # "Chat accuracy - includes easy chat subsets" vs "Factuality score - measures factual accuracy"
        metric = "accuracy" if "accuracy" in description.split(" - ", 1)[0].lower() else "score"
        return f"reward-bench/{dataset_name}", None if name == "Score" else name, metric
    if board.startswith("hal-"):
        subset = name.split(" - ", 1)[1] if " - " in name else None
        return board, subset, _hal_metric(description)
    if board == "livecodebenchpro":
        return board, name, _metric_before_on(description, "score")
    if dataset_name and dataset_name != board:
        return f"{board}/{name or dataset_name}", None, _metric_before_on(description, "score")
    return board, None if name in ("", board) else name, _metric_before_on(description, "score")


def _board(data: dict, path: Path) -> str:
    """The board folder under `data/` when the file sits in the tree, else the id's prefix.

    The folder wins because the id is not reliable: RewardBench 2 files live in `reward-bench/`
    but their ids start with `reward-bench-2/`.
    """
    parts = path.parts
    if "data" in parts[:-2]:
        return parts[len(parts) - 1 - parts[::-1].index("data") + 1]
    evaluation_id = str(data.get("evaluation_id") or "")
    board = evaluation_id.split("/", 1)[0] if "/" in evaluation_id else ""
    board = re.sub(r"-\d+$", "", board) if board.startswith("reward-bench") else board
    return board or str((data.get("source_metadata") or {}).get("source_name") or "unknown")


def parse_eee_file(path: Path, context: ImportContext, rejected: Rejected) -> tuple[list[dict], dict | None]:
    """Rows (with a `retrieved` float for de-duplication) and a model-metadata row."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        rejected.add(f"unreadable EEE file {path.name}: {str(exc).splitlines()[0]}")
        return [], None
    info = data.get("model_info") if isinstance(data, dict) else None
    if not isinstance(info, dict) or not info.get("id") or not isinstance(data.get("evaluation_results"), list):
        rejected.add(f"not an EEE evaluation file: {path.name}")
        return [], None
    board = _board(data, path)
    model = str(info["id"]).strip()
    variant = _variant(board, info)
    try:
        retrieved = float(data.get("retrieved_timestamp") or 0.0)
    except ValueError:
        retrieved = 0.0
    rows = []
    for result in data["evaluation_results"]:
        score = (result.get("score_details") or {}).get("score") if isinstance(result, dict) else None
        if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
            rejected.add("EEE result without a numeric score")
            continue
        if board.startswith("helm") and score == -1.0:
            rejected.add("HELM -1 'not evaluated' marker")
            continue
        dataset, subset, metric = _placement(board, result)
        lower = (result.get("metric_config") or {}).get("lower_is_better")
        rows.append({
            "source": context.source or SOURCE, "model": model, "model_revision": variant,
            "dataset": dataset, "task": _task(board), "metric": metric, "value": float(score),
            "higher_is_better": None if lower is None else not bool(lower), "split": None,
            "subset": subset, "evaluated_at": None, "source_ref": str(path), "retrieved": retrieved,
        })
    details = info.get("additional_details") or {}
    meta: dict[str, object] = {"model": model}
    params = details.get("params_billions")
    if isinstance(params, int | float) and params > 0:
        meta["n_parameters"] = round(params * 1e9)
    extra = {k: v for k, v in {
        "developer": info.get("developer"), "display_name": info.get("name"),
        "architecture": details.get("architecture"), "model_type": details.get("model_type"),
    }.items() if v}
    if extra:
        meta["extra"] = {"every_eval_ever": extra}
    return rows, meta


_KEY = ["source", "model", "model_revision", "dataset", "metric", "split", "subset"]


def deduplicate(rows: list[dict], rejected: Rejected) -> pl.DataFrame:
    """Latest scrape wins; same key + same timestamp + different values → drop them all."""
    frame = records_frame([{k: v for k, v in r.items() if k != "retrieved"} for r in rows])
    if frame.is_empty():
        return frame
    frame = frame.with_columns(pl.Series("retrieved", [r["retrieved"] for r in rows], dtype=pl.Float64))
    latest = frame.with_columns(pl.col("retrieved").max().over(_KEY).alias("_latest"))
    superseded = latest.filter(pl.col("retrieved") < pl.col("_latest"))
    rejected.add("superseded by a later scrape of the same key", superseded.height)
    current = latest.filter(pl.col("retrieved") == pl.col("_latest"))
    distinct = current.with_columns(pl.col("value").n_unique().over(_KEY).alias("_n"))
    ambiguous = distinct.filter(pl.col("_n") > 1)
    rejected.add("ambiguous: files share a key and a timestamp but disagree", ambiguous.height)
    kept = distinct.filter(pl.col("_n") == 1).unique(subset=_KEY, keep="first", maintain_order=True)
    return kept.drop("retrieved", "_latest", "_n")


def _parse_files(files: list[Path], context: ImportContext) -> ParsedFile:
    parsed = ParsedFile()
    rows: list[dict] = []
    metas: dict[str, dict] = {}
    for path in files:
        file_rows, meta = parse_eee_file(path, context, parsed.rejected)
        rows.extend(file_rows)
        if meta and len(meta) > 1:
            metas.setdefault(str(meta["model"]), {}).update(meta)
    parsed.records = deduplicate(rows, parsed.rejected)
    parsed.models = list(metas.values())
    return parsed


def _sniff_file(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    head = read_head(path, 4096)
    return '"evaluation_results"' in head or ('"schema_version"' in head and '"model_info"' in head)


def _data_root(path: Path) -> Path | None:
    for candidate in (path / "data", path):
        if candidate.is_dir():
            sample = next(candidate.glob("*/*/*/*.json"), None) or next(candidate.glob("*/*/*.json"), None)
            if sample is not None and _sniff_file(sample):
                return candidate
    return None


def _boards(path: Path) -> list[Path]:
    """The units of a data tree: one folder per board."""
    root = _data_root(path)
    assert root is not None
    boards = sorted(p for p in root.iterdir() if p.is_dir())
    # A board folder given directly (…/data/helm_lite) is itself the unit.
    if not any(next(b.glob("*/*/*.json"), None) for b in boards):
        boards = [root]
    return boards


def _parse_tree(path: Path, context: ImportContext) -> Iterator[tuple[str, ParsedFile]]:
    for board in _boards(path):
        yield str(board), _parse_files(sorted(board.rglob("*.json")), context)


def _parse_one(path: Path, context: ImportContext) -> Iterator[tuple[str, ParsedFile]]:
    yield str(path), _parse_files([path], context)


FORMATS = (
    Format("eee-tree", "Every Eval Ever data tree (data/<board>/<developer>/<model>/<uuid>.json)",
           lambda p: p.is_dir() and _data_root(p) is not None, _parse_tree, is_tree=True,
           count_units=lambda p: len(_boards(p))),
    Format("eee-json", "one Every Eval Ever evaluation file", _sniff_file, _parse_one),
)
