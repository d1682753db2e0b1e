"""Routing-decision benchmarks: one query through embedding + router (the answering model
excluded), and kNN over 100,000 labelled queries.

    .venv/bin/python tests/bench/bench_routing.py [--labelled 100000] [--queries 200] [--table PARQUET]

Queries are real prompts from a routing table (`../shared/data/routing/llmrouter.parquet`, or the
fixture sample when the shared data is absent), each embedded uncached, one at a time, the way
`lensroute route answer` sees them. The 100,000 labelled queries are the real embeddings of the
table's *other* prompts, repeated with small seeded perturbations (so neighbours are realistic,
no two are equal, and no query is its own neighbour).
Every router is trained on the labelled set; each decision is timed end to end. The baseline
printed next to each figure is a brute-force float64 kNN in the same process. Every number is
measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

TARGET_DECISION_MS = 10.0
TARGET_KNN_MS = 5.0


def prompts_of(table: Path, n: int) -> list[str]:
    import polars as pl

    frame = pl.read_parquet(table).select("query_id", "prompt").unique("query_id").sort("query_id")
    return frame["prompt"].to_list()[:n]


def timed(fn, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labelled", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--models", type=int, default=9)
    parser.add_argument("--table", type=Path)
    args = parser.parse_args()

    from recommender.text_encoder import TextEncoder
    from routing.routers import CostModel, decide, make_router

    shared = REPO.parent / "shared" / "data" / "routing" / "llmrouter.parquet"
    table = args.table or (shared if shared.is_file() else REPO / "tests" / "fixtures" / "routing" / "llmrouter.parquet")
    every = prompts_of(table, 10**9)
    prompts, labelled_prompts = every[: args.queries], every[args.queries :]  # queries never labelled
    encoder = TextEncoder(cache=False)  # uncached: every decision pays for its embedding
    base = TextEncoder().encode(labelled_prompts)  # cached between runs
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(base), args.labelled)
    labelled = base[rows] + rng.normal(scale=0.05, size=(args.labelled, base.shape[1])).astype(np.float32)
    scores = (rng.random((args.labelled, args.models)) < 0.6).astype(np.float64)
    lengths = np.array([len(labelled_prompts[i]) for i in rows], dtype=np.float64)
    cost_model = CostModel().fit(lengths, np.tile(np.linspace(0.1, 1.0, args.models), (args.labelled, 1)))
    print(f"{len(prompts)} real query prompts from {table.name}; {args.labelled:,} labelled queries (perturbed copies of "
          f"its other {len(labelled_prompts):,} prompts) × {args.models} models; "
          f"provider {encoder.info.provider}")

    embed_ms = timed(lambda: None, 0)
    for prompt in prompts:
        embed_ms += timed(lambda p=prompt: encoder.encode([p]), 1)
    print(f"embedding one query (uncached)        median {statistics.median(embed_ms):7.2f} ms   "
          f"p90 {np.percentile(embed_ms, 90):7.2f} ms")

    started = time.perf_counter()
    knn = make_router("knn").fit(labelled, scores)
    knn_fit_s = time.perf_counter() - started
    queries = encoder.encode(prompts)
    knn_ms = [t for q in queries for t in timed(lambda q=q: knn.predict(q[None]), 1)]
    # recall of the index against the exact search over the same (index-ordered) rows
    found, _ = knn.neighbours(queries)
    exact = np.argpartition(-(queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ knn.x.T, knn.k - 1, axis=1)[:, : knn.k]
    recall = np.mean([len(set(a.tolist()) & set(b.tolist())) / knn.k for a, b in zip(found, exact, strict=True)])
    index = "exact search" if knn.centroids is None else f"IVF {len(knn.centroids)} lists, nprobe {knn.nprobe}"
    print(f"kNN index: {index}, built in {knn_fit_s:.1f} s; recall@{knn.k} vs exact {recall:.3f}")

    def brute(q: np.ndarray) -> np.ndarray:
        sims = (labelled.astype(np.float64) / np.linalg.norm(labelled, axis=1, keepdims=True)) @ q.astype(np.float64)
        top = np.argsort(-sims)[:32]
        return scores[top].mean(0)

    brute_ms = [t for q in queries[:20] for t in timed(lambda q=q: brute(q), 1)]
    print(f"kNN over {args.labelled:,} labelled queries   median {statistics.median(knn_ms):7.2f} ms   "
          f"(brute-force float64 baseline {statistics.median(brute_ms):.2f} ms: "
          f"{statistics.median(brute_ms) / statistics.median(knn_ms):.1f}× faster)   target ≤ {TARGET_KNN_MS} ms: "
          f"{'met' if statistics.median(knn_ms) <= TARGET_KNN_MS else 'NOT met'}")

    for kind in ("knn", "mlp", "lgbm", "cluster"):
        n_train = args.labelled if kind in ("knn", "cluster") else min(args.labelled, 20_000)
        started = time.perf_counter()
        router = knn if kind == "knn" else make_router(kind).fit(labelled[:n_train], scores[:n_train], seed=0)
        fit_s = time.perf_counter() - started

        totals, embeds, routes = [], [], []
        for p in prompts:
            t0 = time.perf_counter()
            x = encoder.encode([p])
            t1 = time.perf_counter()
            quality = router.predict(x)
            cost = cost_model.predict(np.array([float(len(p))]))
            decide(quality, cost, None, 0.5)
            t2 = time.perf_counter()
            totals.append((t2 - t0) * 1000)
            embeds.append((t1 - t0) * 1000)
            routes.append((t2 - t1) * 1000)
        median = statistics.median(totals)
        print(f"decision with {kind:<8} (embed + route)  median {median:7.2f} ms   p90 {np.percentile(totals, 90):7.2f} ms   "
              f"(embed {statistics.median(embeds):.2f} ms + route {statistics.median(routes):.2f} ms; "
              f"trained on {n_train:,} in {fit_s:.1f} s)   target ≤ {TARGET_DECISION_MS} ms: "
              f"{'met' if median <= TARGET_DECISION_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
