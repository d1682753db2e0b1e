"""Unified record files (parquet, CSV, JSONL) and the ModelLens public corpus CSV."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl

from recommender.errors import FormatError
from recommender.importers.base import (
    UTF8_BOM,
    Format,
    ImportContext,
    ParsedFile,
    first_line,
    read_head,
    single,
    starts_with_bom,
)
from recommender.records import REQUIRED_COLUMNS

MODELLENS_COLUMNS = ("task", "dataset", "model", "metric", "value", "dataset_desp")


def _csv_header(path: Path) -> list[str]:
    return [c.strip().strip('"') for c in first_line(path).split(",")]


def _read(path: Path, kind: str) -> pl.DataFrame:
    try:
        if kind == "parquet":
            return pl.read_parquet(path)
        if kind == "csv":
            return pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
        if starts_with_bom(path):  # polars' JSON reader stops at a byte-order mark
            return pl.read_ndjson(io.BytesIO(path.read_bytes().removeprefix(UTF8_BOM)), infer_schema_length=None)
        return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        where = _first_bad_json_line(path) if kind == "jsonl" else None
        raise FormatError(f"cannot read {kind}: {where or str(exc).splitlines()[0]}") from exc


def _first_bad_json_line(path: Path) -> str | None:
    """polars names a character offset in the whole file; a user needs the line to fix."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        json.loads(line)
                    except ValueError as exc:
                        return f"line {number}: {getattr(exc, 'msg', exc)}"
    except OSError:
        return None
    return None


def _unified(kind: str):  # type: ignore[no-untyped-def]
    def parse(path: Path, context: ImportContext) -> ParsedFile:
        frame = _read(path, kind)
        if context.source:
            frame = frame.with_columns(pl.lit(context.source).alias("source"))
        elif "source" not in frame.columns:
            frame = frame.with_columns(pl.lit(path.stem).alias("source"))
        if "source_ref" not in frame.columns:
            frame = frame.with_columns(pl.lit(f"file:{path.name}").alias("source_ref"))
        return ParsedFile(records=frame)

    return parse


def _is_unified_columns(columns: list[str]) -> bool:
    return all(c in columns for c in REQUIRED_COLUMNS) and "dataset_desp" not in columns


def _sniff_parquet(path: Path) -> bool:
    if path.suffix.lower() != ".parquet":
        return False
    try:
        return _is_unified_columns(list(pl.read_parquet_schema(path)))
    except (pl.exceptions.PolarsError, OSError):
        return False


def _sniff_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv" and _is_unified_columns(_csv_header(path))


def _sniff_jsonl(path: Path) -> bool:
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        return False
    try:
        keys = list(json.loads(read_head(path, 65536).splitlines()[0]))
    except (ValueError, IndexError):
        return False
    return _is_unified_columns(keys)


def _parse_modellens(path: Path, context: ImportContext) -> ParsedFile:
    frame = _read(path, "csv")
    frame = frame.rename({"dataset_desp": "dataset_description"}).with_columns(
        pl.lit(context.source or "modellens").alias("source"),
        pl.lit(f"file:{path.name}").alias("source_ref"),
    )
    return ParsedFile(records=frame)


def _sniff_modellens(path: Path) -> bool:
    return path.suffix.lower() == ".csv" and set(MODELLENS_COLUMNS) <= set(_csv_header(path))


FORMATS = (
    Format("records-parquet", "unified record schema, parquet", _sniff_parquet, single(_unified("parquet"))),
    Format("records-csv", "unified record schema, CSV", _sniff_csv, single(_unified("csv"))),
    Format("records-jsonl", "unified record schema, JSON lines", _sniff_jsonl, single(_unified("jsonl"))),
    Format("modellens-csv", "ModelLens public corpus (task,dataset,model,metric,value,dataset_desp)", _sniff_modellens, single(_parse_modellens)),
)
