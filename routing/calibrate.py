"""`lensroute route calibrate`: run every pool model on a labelled multiple-choice set, record
score = correct and cost = measured latency, and train the router the pool will route with.

The router's own worth is estimated honestly before it is saved: 5-fold cross-validation over
the calibration questions gives its accuracy next to the best single model's and the oracle's.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from recommender.errors import NoDataError, UsageError
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, SubProgress, no_progress
from routing.answering import Answerer, Question
from routing.local_models import get
from routing.router_store import DEFAULT_NAME, save_router
from routing.routers import ROUTERS, BestSingle, CostModel, decide, make_router

FOLDS = 5


def query_text(question: Question) -> str:
    """What the router sees: the question with its choices, as the model would."""
    return question.question if not question.choices else question.question + "\n" + "\n".join(question.choices)


def check_pool(pool: list[str]) -> list:  # type: ignore[type-arg]
    names = [n.strip() for n in pool if n.strip()]
    if not names:
        raise UsageError("the pool is empty: name at least one installed model (see `lensroute models list`)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"model(s) named twice in the pool: {', '.join(duplicates)}")
    return [get(n) for n in names]  # NotFoundError names the missing one


def run_pool(pool: list, questions: list[Question], device: str = "auto", progress: Progress = no_progress,  # type: ignore[type-arg]
             cancel: CancelToken = NEVER_CANCELLED) -> tuple[np.ndarray, np.ndarray]:
    """(scores, seconds), each [questions, models]: 1 where the model chose the labelled answer."""
    scores = np.zeros((len(questions), len(pool)))
    seconds = np.zeros_like(scores)
    total = len(questions) * len(pool)
    for j, model in enumerate(pool):
        answerer = Answerer(model, device=device)
        answerer.answer(questions[0])  # warm-up: first-call allocations are not the model's latency
        for i, question in enumerate(questions):
            cancel.raise_if_cancelled()
            answer = answerer.answer(question)
            scores[i, j] = float(answer.choice == question.answer)
            seconds[i, j] = answer.seconds
            progress(j * len(questions) + i + 1, total, f"{model.name}: {i + 1}/{len(questions)}")
    return scores, seconds


def cross_validate(x: np.ndarray, scores: np.ndarray, kind: str, seed: int = 0) -> dict:
    """Out-of-fold accuracy of the router, best-single and oracle (λ = 0: quality only)."""
    n = len(x)
    if n < 2 * FOLDS:
        return {"folds": 0, "note": f"too few questions ({n}) for {FOLDS}-fold cross-validation"}
    folds = np.random.default_rng(seed).permutation(n) % FOLDS
    chosen_router, chosen_single = np.zeros(n, int), np.zeros(n, int)
    for fold in range(FOLDS):
        train, test = folds != fold, folds == fold
        zero_cost = np.zeros((int(test.sum()), scores.shape[1]))
        router = make_router(kind).fit(x[train], scores[train], seed=seed)
        chosen_router[test] = decide(router.predict(x[test]), zero_cost, None, 0.0)
        chosen_single[test] = decide(BestSingle().fit(x[train], scores[train]).predict(x[test]), zero_cost, None, 0.0)
    rows = np.arange(n)
    return {"folds": FOLDS, "router": round(float(scores[rows, chosen_router].mean()), 4),
            "best_single": round(float(scores[rows, chosen_single].mean()), 4),
            "oracle": round(float(scores.max(axis=1).mean()), 4)}


def calibrate(pool_names: list[str], questions: list[Question], *, kind: str = "knn", name: str = DEFAULT_NAME,
              device: str = "auto", data_file: Path | None = None, embed=None, seed: int = 0,  # type: ignore[no-untyped-def]
              progress: Progress = no_progress, cancel: CancelToken = NEVER_CANCELLED) -> dict:
    if kind not in ROUTERS:
        raise UsageError(f"unknown router {kind!r}; use one of {', '.join(ROUTERS)}")
    pool = check_pool(pool_names)
    if len(questions) < 2:
        raise NoDataError("calibration needs at least two labelled questions")
    started = time.perf_counter()
    scores, seconds = run_pool(pool, questions, device, SubProgress(progress, 0, 9, 10), cancel)
    progress(9, 10, "training the router")
    texts = [query_text(q) for q in questions]
    if embed is None:
        from recommender.text_encoder import default_encoder

        embed = default_encoder().encode
    x = embed(texts)
    lengths = np.array([len(t) for t in texts], dtype=np.float64)
    router = make_router(kind).fit(x, scores, seed=seed)
    cost_model = CostModel().fit(lengths, seconds)
    summary = {
        "router": name, "kind": kind, "pool": [m.name for m in pool], "pool_kinds": [m.kind for m in pool],
        "questions": len(questions), "data": str(data_file) if data_file else None, "cost_basis": "latency-s",
        "accuracy": {m.name: round(float(scores[:, j].mean()), 4) for j, m in enumerate(pool)},
        "latency_ms": {m.name: round(float(seconds[:, j].mean() * 1000), 2) for j, m in enumerate(pool)},
        "cross_validated": cross_validate(x, scores, kind, seed),
        "seconds": round(time.perf_counter() - started, 1),
        "calibrated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    summary["path"] = str(save_router(name, router, cost_model, summary))
    progress(10, 10, "done")
    return summary


def describe(summary: dict) -> list[str]:
    """`calibrate`'s summary as lines for a person: the CLI prints them, the GUI logs them."""
    lines = [f"router {summary['router']!r} ({summary['kind']}) trained on {summary['questions']} questions "
             f"→ {summary['path']}"]
    lines += [f"  {model:<28} accuracy {summary['accuracy'][model]:.3f}  latency {summary['latency_ms'][model]:>9.2f} ms"
              for model in summary["pool"]]
    cv = summary["cross_validated"]
    if cv.get("folds"):
        lines.append(f"  {cv['folds']}-fold cross-validated accuracy: router {cv['router']:.3f}, "
                     f"best single {cv['best_single']:.3f}, oracle {cv['oracle']:.3f}")
    else:
        lines.append(f"  {cv['note']}")
    return lines
