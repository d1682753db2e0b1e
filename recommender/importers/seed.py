"""The bundled seed catalogue (built by `recommender.seed_build`): one folder, one import unit.

Layout: `manifest.json` (kind `lensroute-seed`), `datasets.jsonl.gz` and `models.jsonl.gz` in the
shapes of `meta/*.jsonl`, and `records.parquet` in the unified schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from recommender.importers import meta
from recommender.importers.base import Format, ImportContext, ParsedFile

MANIFEST = "manifest.json"
KIND = "lensroute-seed"


def is_seed(path: Path) -> bool:
    manifest = path / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("kind") == KIND
    except (ValueError, OSError):
        return False


def _parse(path: Path, context: ImportContext) -> Iterator[tuple[str, ParsedFile]]:
    parsed = ParsedFile()
    datasets = path / "datasets.jsonl.gz"
    if datasets.exists():
        parsed.datasets = meta._parse_tasks(datasets, context).datasets
    models = path / "models.jsonl.gz"
    if models.exists():
        parsed.models = meta._parse_models(models, context).models
    parsed.records = pl.read_parquet(path / "records.parquet")
    yield str(path), parsed


FORMATS = (Format("seed", "lensroute seed catalogue folder", lambda p: p.is_dir() and is_seed(p), _parse, is_tree=True),)
