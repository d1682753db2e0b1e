"""Catalogue benchmarks (issue: import speed, re-import ratio, 1M-record memory, stats latency).

    .venv/bin/python tests/bench/bench_catalogue.py [--data ../shared/data] [--million]

Every figure printed here is measured in this run; ratios compare runs made in this process.
The CLI is measured as a user runs it (a fresh process, interpreter start-up included) and the
import pipeline in-process, so both numbers are visible.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env, cwd=REPO)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"lensroute {' '.join(args)} failed: {done.stderr.strip()}")
    return elapsed, done


def cli_code(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    return time.perf_counter() - started


def cli_peak_rss_mb(*args: str, env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one CLI run measured by `/usr/bin/time -v`, which starts the
    command from its own small process (a child's ru_maxrss counts what it inherited at fork)."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "app", *args], capture_output=True, text=True,
                          env=env, cwd=REPO)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"lensroute {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    peak_kb = next(int(line.split(":")[1]) for line in done.stderr.splitlines() if "Maximum resident set size" in line)
    return elapsed, peak_kb / 1024


def synthetic_records(path: Path, n_models: int = 2000, n_datasets: int = 250, n_metrics: int = 2) -> int:
    """1,000,000 records: every model on every dataset under two metrics, deterministic values."""
    models = pl.DataFrame({"model": [f"synthetic-org/model-{i:05d}" for i in range(n_models)]})
    datasets = pl.DataFrame({"dataset": [f"synthetic-task-{j:04d}" for j in range(n_datasets)]})
    metrics = pl.DataFrame({"metric": ["accuracy", "f1"][:n_metrics]})
    grid = models.join(datasets, how="cross").join(metrics, how="cross").with_row_index("i")
    frame = grid.select(
        pl.lit("synthetic").alias("source"), "model", pl.lit(None, pl.String).alias("model_revision"), "dataset",
        pl.lit("Classification").alias("task"), "metric",
        ((pl.col("i") * 2654435761 % 1000003) / 1000003).alias("value"),
        pl.lit(True).alias("higher_is_better"), pl.lit("test").alias("split"), pl.lit(None, pl.String).alias("subset"),
        pl.lit(None, pl.String).alias("evaluated_at"), pl.lit("bench:synthetic").alias("source_ref"),
    )
    frame.write_parquet(path)
    return frame.height


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--million", action="store_true", help="also import 1,000,000 synthetic records")
    args = parser.parse_args()
    records_dir = args.data / "records"
    n_records = sum(pl.scan_parquet(p).select(pl.len()).collect().item() for p in records_dir.glob("*.parquet"))
    results: dict[str, object] = {"records_in_files": n_records}

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LENSROUTE_HOME": tmp, "LENSROUTE_DB": f"sqlite:///{tmp}/bench.db"}
        # Three fresh databases for the first import, three re-imports of the last: this machine's
        # run-to-run noise is about ±10 %, so one run says little. All runs are printed.
        firsts, agains = [], []
        for trial in range(3):
            env = {**env, "LENSROUTE_DB": f"sqlite:///{tmp}/bench{trial}.db"}
            firsts.append(cli("-q", "import", str(records_dir), env=env)[0])
        for _ in range(3):
            agains.append(cli("-q", "import", str(records_dir), env=env)[0])
        stats_times = [cli("stats", "--json", env=env)[0] for _ in range(5)]
        first, again = sorted(firsts)[1], sorted(agains)[1]
        # What every import pays before reading a byte: the interpreter and the libraries an
        # import loads (polars, the importers; an SQLite file is written through sqlite3, so
        # not SQLAlchemy), started and stopped as a process.
        startup = sorted(
            cli_code("import recommender.ingest, recommender.importers, app.cli.main") for _ in range(3))[1]
        results.update({
            "cli_first_import_runs_s": [round(t, 3) for t in firsts],
            "cli_first_import_s": round(first, 3),
            "cli_first_import_records_per_s": round(n_records / first),
            "cli_reimport_runs_s": [round(t, 3) for t in agains],
            "cli_reimport_s": round(again, 3),
            "reimport_speedup": round(first / again, 2),
            "cli_stats_median_s": round(sorted(stats_times)[2], 3),
            "process_start_with_libraries_s": round(startup, 3),
        })

        from recommender.ingest import import_paths
        from recommender.store import Store

        store = Store(f"sqlite:///{tmp}/inprocess.db")
        started = time.perf_counter()
        report = import_paths(store, sorted(records_dir.glob("*.parquet")))
        inproc = time.perf_counter() - started
        started = time.perf_counter()
        import_paths(store, sorted(records_dir.glob("*.parquet")))
        inproc_again = time.perf_counter() - started
        results.update({
            "inprocess_first_import_s": round(inproc, 3),
            "inprocess_records_per_s": round(report.totals().added / inproc),
            "inprocess_reimport_s": round(inproc_again, 3),
            "inprocess_reimport_speedup": round(inproc / inproc_again, 1),
        })

        if args.million:
            big = Path(tmp) / "million.parquet"
            n = synthetic_records(big)
            env_big = {**env, "LENSROUTE_DB": f"sqlite:///{tmp}/million.db"}
            seconds, peak = cli_peak_rss_mb("-q", "import", str(big), env=env_big)
            stats_big = sorted(cli("stats", "--json", env=env_big)[0] for _ in range(5))[2]
            results.update({
                "million_records": n,
                "million_import_s": round(seconds, 2),
                "million_records_per_s": round(n / seconds),
                "million_import_peak_rss_mb": round(peak, 1),
                "million_catalogue_stats_median_s": round(stats_big, 3),
            })
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
