"""Hugging Face model cards: the `model-index` block in a README's YAML front matter.

Values arrive as numbers or as strings such as "20.0 ± 1.2" or "45.3%"; the point estimate is
kept. The model is named by the repository (`<org>__<name>` folder, or the crawler's repo id),
falling back to the `model-index` name.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from recommender.errors import FormatError
from recommender.importers.base import Format, ImportContext, ParsedFile, read_head, single
from recommender.records import records_frame

SOURCE = "hf_model_cards"
_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(%|(?:±|\+/?-|\+-).*)?$")


def parse_value(raw: object) -> float | None:
    """A metric value as a float, or None when it is not a number at all."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw) if math.isfinite(raw) else None
    if isinstance(raw, str):
        match = _NUMBER.match(raw.replace(",", "."))
        if match:
            value = float(match.group(1))
            return value if math.isfinite(value) else None
    return None


def front_matter(text: str) -> dict:
    """The YAML between the leading `---` lines, or {} when the card has none."""
    text = text.lstrip("\ufeff")
    if not text.startswith("---"):
        return {}
    end = re.search(r"^---\s*$", text[3:], flags=re.MULTILINE)
    if end is None:
        raise FormatError("model card front matter is not closed by '---'")
    import yaml  # 8 ms of start-up, paid only by the files that are YAML

    try:
        data = yaml.safe_load(text[3 : 3 + end.start()]) or {}
    except yaml.YAMLError as exc:
        raise FormatError(f"invalid YAML front matter: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise FormatError("model card front matter is not a mapping")
    return data


def model_from_path(path: Path) -> str | None:
    folder = path.parent.name
    return folder.replace("__", "/", 1) if "__" in folder else None


def parse_card(text: str, *, model: str | None, source_ref: str, context: ImportContext) -> ParsedFile:
    meta = front_matter(text)
    parsed = ParsedFile()
    index = meta.get("model-index") or []
    if not isinstance(index, list):
        raise FormatError("model-index is not a list")
    rows = []
    for entry in index:
        if not isinstance(entry, dict):
            continue
        name = model or str(entry.get("name") or "").strip()
        if not name:
            parsed.rejected.add("model-index entry without a model name")
            continue
        for result in entry.get("results") or []:
            if not isinstance(result, dict):
                continue
            task = result.get("task") or {}
            dataset = result.get("dataset") or {}
            dataset_name = str(dataset.get("name") or dataset.get("type") or "").strip()
            ref = ((result.get("source") or {}).get("url")) or source_ref
            for metric in result.get("metrics") or []:
                if not isinstance(metric, dict):
                    continue
                value = parse_value(metric.get("value"))
                metric_name = str(metric.get("type") or metric.get("name") or "").strip()
                if value is None or not metric_name or not dataset_name:
                    parsed.rejected.add("model-index metric without a numeric value, type or dataset")
                    continue
                rows.append({
                    "source": context.source or SOURCE, "model": name, "model_revision": None,
                    "dataset": dataset_name, "task": task.get("type"), "metric": metric_name,
                    "value": value, "higher_is_better": None, "split": dataset.get("split"),
                    "subset": None, "evaluated_at": None, "source_ref": str(ref),
                })
    parsed.records = records_frame(rows)
    target = model or (str(index[0].get("name")) if index and isinstance(index[0], dict) and index[0].get("name") else None)
    if target:
        extra = {k: meta[k] for k in ("license", "datasets", "base_model", "tags", "language", "pipeline_tag", "library_name") if meta.get(k)}
        row: dict[str, object] = {"model": target}
        if isinstance(meta.get("license"), str):
            row["licence"] = meta["license"]
        if extra:
            row["extra"] = {"hf_card": extra}
        parsed.models.append(row)
    return parsed


def _parse(path: Path, context: ImportContext) -> ParsedFile:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError("model card is not UTF-8 text") from exc
    return parse_card(text, model=model_from_path(path), source_ref=str(path), context=context)


def _sniff(path: Path) -> bool:
    if path.suffix.lower() not in (".md", ".markdown"):
        return False
    head = read_head(path, 65536)
    return head.lstrip("\ufeff").startswith("---") and "model-index:" in head


FORMATS = (Format("hf-model-card", "Hugging Face model card (README.md with model-index)", _sniff, single(_parse)),)
