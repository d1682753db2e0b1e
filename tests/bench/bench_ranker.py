"""Ranker benchmarks: 50,000 candidate models for one new dataset through ONNX Runtime, against
naive per-pair torch scoring of the same trained model; resident memory; training throughput.

    .venv/bin/python tests/bench/bench_ranker.py [--ranker DIR] [--models 50000] [--device cpu|cuda]

The 50,000-model catalogue is the trained ranker's own known models repeated (with their evidence
rows) until there are 50,000, so every candidate has realistic features and results. Every number
printed is measured in this run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DESCRIPTION = "Retrieve passages that answer questions about French legal documents, run {i}"


def scale_ranker(source: Path, out: Path, n_models: int) -> None:
    """A copy of `source` whose known models are repeated to `n_models` (evidence included)."""
    shutil.copytree(source, out)
    with np.load(source / "arrays.npz") as data:
        arrays = {k: data[k] for k in data.files}
    vocab = json.loads((source / "vocab.json").read_text())
    known = np.flatnonzero(arrays["trained"])
    reps = -(-n_models // len(known))
    picked = np.tile(known, reps)[:n_models]
    index = np.concatenate([[0], picked])  # new row i+1 copies old row picked[i]
    for key in ("h", "u", "size", "family", "numeric", "n_parameters", "open_weights"):
        if key in arrays:  # open_weights: rankers exported since the ranking filters
            arrays[key] = arrays[key][index]
    arrays["trained"] = np.ones(len(index), bool)
    arrays["trained"][0] = False
    # replicas get slightly different features, so no two candidates tie exactly
    noise = np.random.default_rng(0).normal(0, 1e-3, arrays["h"].shape).astype(np.float32)
    noise[0] = 0.0
    arrays["h"] = arrays["h"] + noise
    starts = arrays["ev_starts"]
    rows = [np.arange(starts[m], starts[m + 1]) for m in picked]
    order = np.concatenate(rows)
    new_model = np.repeat(np.arange(1, len(index)), [len(r) for r in rows])
    for key in ("ev_dataset", "ev_base", "ev_task", "ev_z", "ev_pct", "ev_metric", "ev_y", "ev_group"):
        if key in arrays:
            arrays[key] = arrays[key][order]
    arrays["ev_model"] = new_model.astype(np.int32)
    arrays["ev_starts"] = np.searchsorted(new_model, np.arange(len(index) + 1))
    np.savez(out / "arrays.npz", **arrays)
    vocab["models"] = [f"{vocab['models'][m - 1]}#{i}" for i, m in enumerate(picked)]
    if "licences" in vocab:
        vocab["licences"] = [vocab["licences"][m - 1] for m in picked]
    (out / "vocab.json").write_text(json.dumps(vocab))


def child_rank(folder: str, device: str) -> None:
    """Runs in a fresh process: load, rank once, report peak RSS (the memory a ranker needs)."""
    from recommender.ranker import Ranker

    ranker = Ranker.load(folder, device=device)
    ranker.rank(DESCRIPTION.format(i="rss"), task="Retrieval", metric="ndcg_at_10", top_k=50, all_models=True)
    # VmHWM, not ru_maxrss: the latter keeps the parent's high-water mark across fork + exec
    peak_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_mb": peak_kb / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranker", type=Path)
    parser.add_argument("--models", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_rank(args.child, args.device)
        return

    import torch

    from recommender.lens_export import _Scorer, load_lens
    from recommender.ranker import Ranker, find_ranker_dir

    source = find_ranker_dir(args.ranker)
    manifest = json.loads((source / "manifest.json").read_text())
    results: dict[str, object] = {"ranker": str(source), "model_version": manifest["model_version"],
                                  "training": manifest.get("training"), "data": manifest.get("data")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ranker"
        scale_ranker(source, folder, args.models)
        ranker = Ranker.load(folder, device=args.device)
        served_weight = ranker.h2h_weight
        ranker.rank(DESCRIPTION.format(i="warm-up"), task="Retrieval", metric="ndcg_at_10", top_k=50, all_models=True)
        # as served (the top 100 reordered head-to-head) and the scorer alone, alternating
        times: dict[float, list[float]] = {served_weight: [], 0.0: []}
        for i in range(args.repeats):
            for weight in times:
                ranker.h2h_weight = weight
                started = time.perf_counter()
                ranking = ranker.rank(DESCRIPTION.format(i=i), task="Retrieval", metric="ndcg_at_10", top_k=50, all_models=True)
                times[weight].append(time.perf_counter() - started)
        assert ranking.query["candidates"] == args.models
        results["provider"] = ranker.session_info.provider
        results["head_to_head_weight"] = served_weight
        results["onnx_rank_median_ms"] = round(statistics.median(times[served_weight]) * 1000, 1)
        results["onnx_rank_p90_ms"] = round(sorted(times[served_weight])[int(0.9 * args.repeats)] * 1000, 1)
        results["onnx_rank_scorer_only_median_ms"] = round(statistics.median(times[0.0]) * 1000, 1)
        ranker.h2h_weight = served_weight

        # the same query, scored pair by pair with the torch model (the naive way)
        scorer = _Scorer(load_lens(folder / "lens.pt")).eval()
        resolved, _, sims = ranker._resolve(DESCRIPTION.format(i=args.repeats - 1), None, "Retrieval", "ndcg_at_10")
        _, task_idx, metric_idx, query_vector = resolved["_ids"]
        rows = ranker.known_rows
        evidence = ranker.evidence.query_features(sims, task_idx, None, rows)
        from recommender.evidence import N_CORE, relative_size

        evidence[:, N_CORE:] = relative_size(ranker.n_parameters)
        started = time.perf_counter()
        naive = np.empty(len(rows), np.float32)
        with torch.no_grad():
            fixed = (torch.tensor([0]), torch.as_tensor(query_vector[None]), torch.tensor([task_idx]), torch.tensor([metric_idx]))
            for j in range(len(rows)):
                naive[j] = scorer(torch.as_tensor(ranker.h[j : j + 1]), torch.as_tensor(ranker.u[j : j + 1]),
                                  torch.as_tensor(ranker.size[j : j + 1]), torch.as_tensor(ranker.family[j : j + 1]),
                                  torch.as_tensor(ranker.numeric[j : j + 1]), torch.as_tensor(evidence[j : j + 1]), *fixed).item()
        naive_seconds = time.perf_counter() - started
        top_naive = [ranker.models[rows[j] - 1] for j in np.argsort(-naive, kind="stable")[:50]]
        top_onnx = [r.model for r in ranking.results]
        results["naive_torch_per_pair_s"] = round(naive_seconds, 2)
        # the scorer's own order is what the naive path reproduces (`ranking` above ran last, at weight 0)
        results["speedup_vs_naive_torch"] = round(naive_seconds / statistics.median(times[0.0]), 1)
        results["speedup_vs_naive_torch_as_served"] = round(naive_seconds / statistics.median(times[served_weight]), 1)
        results["identical_top50"] = top_naive == top_onnx

        child = subprocess.run([sys.executable, __file__, "--child", str(folder), "--device", args.device],
                               capture_output=True, text=True, cwd=REPO)
        if child.returncode != 0:
            raise SystemExit(child.stderr)
        results["ranker_process_peak_rss_mb"] = round(json.loads(child.stdout.strip().splitlines()[-1])["peak_rss_mb"], 1)
        results["models"] = args.models
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
