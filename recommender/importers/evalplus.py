"""EvalPlus-style leaderboards: EvalPlus `results.json` (HumanEval(+)/MBPP(+)),
`results/evalperf/COMBINED-RESULTS.json`, and BigCodeBench's `results.json` /
`results-hard.json`, which share the `{model: {"link", "pass@1": {split: value}, "size"}}` shape."""

from __future__ import annotations

import json
import math
from pathlib import Path

from recommender.errors import FormatError
from recommender.importers.base import Format, ImportContext, ParsedFile, read_head, single
from recommender.records import records_frame

SOURCE = "evalplus"
_PERF_TASKS = {"dps": "code-efficiency", "dps_norm": "code-efficiency"}


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"invalid JSON: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise FormatError("an EvalPlus file is a JSON object keyed by model")
    return data


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _hf_name(link: object) -> str | None:
    if isinstance(link, str) and "huggingface.co/" in link:
        parts = link.split("huggingface.co/", 1)[1].strip("/").split("/")
        if len(parts) >= 2 and parts[0] not in ("spaces", "datasets", "papers", "blog"):
            return f"{parts[0]}/{parts[1]}"
    return None


def _row(context: ImportContext, path: Path, model: str, dataset: str, task: str, metric: str, value: float) -> dict:
    return {
        "source": context.source or SOURCE, "model": model, "model_revision": None, "dataset": dataset,
        "task": task, "metric": metric, "value": float(value), "higher_is_better": True,
        "split": None, "subset": None, "evaluated_at": None, "source_ref": str(path),
    }


def _parse_results(path: Path, context: ImportContext) -> ParsedFile:
    return _parse_pass_at_1(path, context, source=SOURCE, dataset_prefix="")


def _parse_bigcodebench(path: Path, context: ImportContext) -> ParsedFile:
    hard = "hard" in path.stem
    return _parse_pass_at_1(path, context, source="bigcodebench",
                            dataset_prefix="bigcodebench-hard/" if hard else "bigcodebench/")


def _parse_pass_at_1(path: Path, context: ImportContext, *, source: str, dataset_prefix: str) -> ParsedFile:
    parsed = ParsedFile()
    rows = []
    for key, entry in _load(path).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("pass@1"), dict):
            parsed.rejected.add("EvalPlus entry without pass@1 scores")
            continue
        model = _hf_name(entry.get("link")) or key.strip()
        for dataset, value in entry["pass@1"].items():
            if _finite(value):
                row = _row(context, path, model, dataset_prefix + dataset, "code-generation", "pass@1", value)
                row["source"] = context.source or source
                rows.append(row)
            else:
                parsed.rejected.add("EvalPlus cell without a value (not evaluated)")
        meta: dict[str, object] = {"model": model, "extra": {source: {
            k: entry[k] for k in ("link", "open-data", "prompted", "size") if entry.get(k) is not None} | {"display_name": key}}}
        if _finite(entry.get("size")) and entry["size"] > 0:
            meta["n_parameters"] = round(float(entry["size"]) * 1e9)
        parsed.models.append(meta)
    parsed.records = records_frame(rows)
    return parsed


def _parse_evalperf(path: Path, context: ImportContext) -> ParsedFile:
    parsed = ParsedFile()
    rows = []
    for key, metrics in _load(path).items():
        if not isinstance(metrics, dict):
            parsed.rejected.add("EvalPerf entry is not an object")
            continue
        model = key.replace("--", "/")
        for metric, value in metrics.items():
            if _finite(value):
                rows.append(_row(context, path, model, "evalperf", _PERF_TASKS.get(metric, "code-generation"), metric, value))
    parsed.records = records_frame(rows)
    return parsed


def _sniff_results(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    head = read_head(path, 4096)
    return '"pass@1"' in head and ('"humaneval' in head or '"mbpp' in head)


def _sniff_bigcodebench(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    head = read_head(path, 4096)
    return '"pass@1"' in head and ('"complete"' in head or '"instruct"' in head)


def _sniff_evalperf(path: Path) -> bool:
    return path.suffix.lower() == ".json" and '"dps_norm"' in read_head(path, 4096)


FORMATS = (
    Format("evalplus-json", "EvalPlus results.json", _sniff_results, single(_parse_results)),
    Format("evalperf-json", "EvalPerf COMBINED-RESULTS.json", _sniff_evalperf, single(_parse_evalperf)),
    Format("bigcodebench-json", "BigCodeBench results.json / results-hard.json", _sniff_bigcodebench, single(_parse_bigcodebench)),
)
