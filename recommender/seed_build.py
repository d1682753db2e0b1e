"""Build the bundled seed catalogue from the public data in `../shared/data`.

    python -m recommender.seed_build --data ../shared/data --out resources/seed

The seed is what a fresh, offline install starts from: every record of `records/*.parquet`
(unified schema, as is), slimmed model metadata and MTEB task metadata in the shapes of
`meta/*.jsonl`, and AutoML-benchmark dataset descriptions made from the benchmark's own
meta-feature table. The output is deterministic for the same inputs (no timestamps inside the
data files; the manifest records input hashes).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
from pathlib import Path

import polars as pl

from recommender.importers.seed import KIND, MANIFEST

MODEL_FIELDS = ("model", "n_parameters", "release_date", "license", "family", "open_weights",
                "embed_dim", "max_tokens", "framework", "modalities", "model_type", "memory_usage_mb",
                "similarity_fn_name", "use_instructions", "is_cross_encoder", "adapted_from", "sources")
EXTRA_FIELDS = {"every_eval_ever": ("developer", "architecture", "model_type", "params_billions"),
                "aider": ("aider_model_args",), "evalplus": ("display_name", "size", "link"),
                "alpaca_eval": ("mode",),
                "llmrouter_candidate": ("size", "input_price_usd_per_1M_tokens", "output_price_usd_per_1M_tokens",
                                        "api_model_id")}
TASK_FIELDS = ("name", "type", "category", "description", "domains", "eval_langs", "main_score",
               "modalities", "eval_splits", "n_samples", "avg_text_length", "n_labels", "license",
               "task_subtypes", "hf_dataset", "reference", "superseded_by", "is_aggregate", "n_hf_subsets")
MAX_LIST = 24  # long language lists carry little signal past the first few dozen entries


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _trim(value: object) -> object:
    if isinstance(value, list) and len(value) > MAX_LIST:
        return value[:MAX_LIST]
    return value


def slim_model(obj: dict) -> dict:
    out = {k: _trim(obj[k]) for k in MODEL_FIELDS if obj.get(k) not in (None, [], {})}
    if obj.get("languages"):
        out["languages"] = _trim(obj["languages"])
    extra = {}
    for source, keys in EXTRA_FIELDS.items():
        part = (obj.get("extra") or {}).get(source) or {}
        kept = {k: part[k] for k in keys if part.get(k) not in (None, [], {})}
        if kept:
            extra[source] = kept
    if extra:
        out["extra"] = extra
    return out


def slim_task(obj: dict) -> dict:
    return {k: _trim(obj[k]) for k in TASK_FIELDS if obj.get(k) not in (None, [], {})}


def amlb_tasks(metadata_csv: Path) -> list[dict]:
    """AutoML benchmark datasets described by their meta-features, in the task-metadata shape."""
    kinds = {"binary": "binary-classification", "multiclass": "multiclass-classification"}
    out = []
    with metadata_csv.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            kind = kinds.get(row["type"], row["type"])
            imbalance = float(row["class_imbalance"]) if row.get("class_imbalance") else None
            description = (
                f"OpenML {kind.replace('-', ' ')} task {row['name']} ({row['task']}): "
                f"{int(float(row['nrows'])):,} rows, {int(float(row['nfeatures']))} features, "
                f"{int(float(row['nclasses']))} classes"
                + (f", class imbalance ratio {imbalance:.1f}" if imbalance else "")
                + ". Tabular data; evaluated by 10-fold cross-validation in the AutoML Benchmark."
            )
            out.append({"name": row["name"].lower(), "type": kind, "description": description,
                        "main_score": "auc" if row["type"] == "binary" else "logloss",
                        "reference": f"https://{row['dataset']}"})
    return out


def benchmark_tasks(records: pl.DataFrame) -> list[dict]:
    """Curated descriptions of the non-MTEB benchmarks (resources/benchmark_descriptions.yaml)."""
    import yaml

    path = Path(__file__).resolve().parents[1] / "resources" / "benchmark_descriptions.yaml"
    descriptions = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    tasks = dict(records.filter(pl.col("source") != "mteb").select("dataset", "task").unique("dataset", keep="first").iter_rows())
    return [{"name": name, "type": tasks.get(name), "description": text} for name, text in sorted(descriptions.items())
            if name in tasks]


def _write_jsonl_gz(path: Path, rows: list[dict]) -> None:
    # mtime=0 keeps the gzip header, and so the file, identical across builds.
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as handle:
        for row in rows:
            handle.write((json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))


def build(data: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    record_files = sorted((data / "records").glob("*.parquet"))
    if not record_files:
        raise SystemExit(f"no records/*.parquet under {data}")
    records = pl.concat([pl.read_parquet(p) for p in record_files], how="vertical")
    records.write_parquet(out / "records.parquet", compression="zstd", compression_level=19, statistics=False)

    models = [slim_model(json.loads(line)) for line in (data / "meta" / "models.jsonl").open(encoding="utf-8")]
    _write_jsonl_gz(out / "models.jsonl.gz", models)

    tasks = [json.loads(line) for line in (data / "meta" / "mteb_tasks.jsonl").open(encoding="utf-8")]
    slim = [slim_task(t) for t in tasks]
    amlb_meta = data / "raw" / "amlb" / "reports" / "old" / "datasets" / "1h" / "metadata.csv"
    if amlb_meta.exists():
        slim.extend(amlb_tasks(amlb_meta))
    slim.extend(benchmark_tasks(records))
    _write_jsonl_gz(out / "datasets.jsonl.gz", slim)

    inputs = [*record_files, data / "meta" / "models.jsonl", data / "meta" / "mteb_tasks.jsonl"]
    manifest = {
        "kind": KIND,
        "version": 1,
        "records": records.height,
        "models": len(models),
        "datasets": len(slim),
        "inputs": {str(p.relative_to(data)): _sha256(p) for p in inputs},
        "licences": "records keep their sources' terms; see ../shared/data/README.md per source",
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "resources" / "seed")
    args = parser.parse_args()
    manifest = build(args.data, args.out)
    sizes = {p.name: p.stat().st_size for p in sorted(args.out.iterdir())}
    print(json.dumps({"records": manifest["records"], "models": manifest["models"],
                      "datasets": manifest["datasets"], "bytes": sizes}, indent=2))


if __name__ == "__main__":
    main()
