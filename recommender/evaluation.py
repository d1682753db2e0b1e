"""`lensroute evaluate`: ModelLens and every baseline on one seeded split, one table."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from recommender import cold_prior, head_to_head
from recommender.baselines import BASELINES
from recommender.evidence import EvidenceIndex, dataset_similarity
from recommender.metrics import group_metrics, macro_average
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, SubProgress, no_progress
from recommender.space import GroupSet, LensSpace
from recommender.splits import Split
from recommender.training import SpaceTensors, TrainConfig, score_groups, train

BREAKDOWN_METRICS = ("tau_w", "ndcg@10")


@dataclass
class MethodResult:
    method: str
    metrics: dict[str, float]
    seconds: float
    note: str = ""
    # task type → {"groups": n, "tau_w": …, "ndcg@10": …}: where a method wins or loses, which one
    # macro average over every test group hides (a split mixes retrieval, clustering, LLM tasks…)
    by_task: dict[str, dict[str, float]] = field(default_factory=dict)
    # one entry per training run when ModelLens was trained with several seeds (its metrics are their mean)
    runs: list[dict[str, float]] = field(default_factory=list)


@dataclass
class EvaluationReport:
    split: str
    seed: int
    n_train_groups: int
    n_test_groups: int
    methods: list[MethodResult] = field(default_factory=list)
    training: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "split": self.split, "seed": self.seed, "n_train_groups": self.n_train_groups,
            "n_test_groups": self.n_test_groups, "training": self.training,
            "methods": [{"method": m.method, "seconds": round(m.seconds, 2), "note": m.note, **m.metrics,
                         "by_task": m.by_task, **({"runs": m.runs} if m.runs else {})} for m in self.methods],
        }


def evaluate_by_task(test: GroupSet, scores: list[np.ndarray]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """The macro averages over every test group, and over the groups of each task type (their
    count, τ_w and NDCG@10), from one pass of per-group metrics."""
    per_group = [group_metrics(test.z[g], scores[g]) for g in range(len(test))]
    tasks: dict[str, list[dict[str, float]]] = {}
    for (_, task, _), metrics in zip(test.keys, per_group, strict=True):
        tasks.setdefault(task, []).append(metrics)
    by_task = {}
    for task, rows in sorted(tasks.items(), key=lambda item: (-len(item[1]), item[0])):
        averaged = macro_average(rows)
        by_task[task] = {"groups": len(rows), **{k: averaged[k] for k in BREAKDOWN_METRICS}}
    return macro_average(per_group), by_task


def _validation_scores(space: LensSpace, split: Split, result, tensors: SpaceTensors) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """The scorer's scores of the split's validation groups: what a weight is chosen on."""
    evidence = result.evidence.group_features(space, dataset_similarity(space), split.val)
    return score_groups(result.model, tensors, split.val, split.val.members, evidence, split.unknown_models,
                        split.unknown_datasets)


def _with_cold_size_prior(space: LensSpace, split: Split, result, tensors: SpaceTensors,  # type: ignore[no-untyped-def]
                          scores: list[np.ndarray]) -> tuple[list[np.ndarray], dict]:
    """Blend the never-seen models' scores with the size prior (`cold_prior`), at the weight
    that ranks the split's validation models best; the test models play no part in the choice."""
    median = cold_prior.median_log_size(space.n_parameters)
    sizes = cold_prior.imputed_log_sizes(space.n_parameters, median)
    unknown = list(split.unknown_models)
    weight, tried = cold_prior.choose_weight(
        _validation_scores(space, split, result, tensors), split.val.z, [np.isin(m, unknown) for m in split.val.members],
        [sizes[m] for m in split.val.members])
    blended = [cold_prior.blend(s, np.isin(m, unknown), sizes[m], weight) for s, m in zip(scores, split.test.members, strict=True)]
    return blended, {"weight": weight, "val_tau_w_by_weight": {str(w): round(t, 4) for w, t in tried.items()}}


def head_to_head_rates(space: LensSpace, evidence: EvidenceIndex, groups: GroupSet,
                       scores: list[np.ndarray]) -> Callable[[float], list[np.ndarray]]:
    """Per agreement γ, per group, the win rates of its top members by `scores` (NaN for the
    rest): what the ranker computes for a query, here for groups whose dataset the scorer did
    not train on. The votes are worked out once and shared by every γ asked for."""
    results, weights = head_to_head.group_queries(space, evidence, groups)

    def rates_at(agreement: float) -> list[np.ndarray]:
        return [head_to_head.rates_for_top(results, members, s, np.ones(len(members), bool), w, agreement=agreement)
                for members, s, w in zip(groups.members, scores, weights, strict=True)]

    return rates_at


def choose_head_to_head(space: LensSpace, split: Split, result, tensors: SpaceTensors) -> head_to_head.Choice:  # type: ignore[no-untyped-def]
    """The weight and agreement γ that order the split's validation groups best under the scorer
    of `result` (a training run whose evidence excludes them), for evaluation and training alike."""
    val_scores = _validation_scores(space, split, result, tensors)
    return head_to_head.choose(val_scores, head_to_head_rates(space, result.evidence, split.val, val_scores), split.val.z)


def _with_head_to_head(space: LensSpace, split: Split, result, tensors: SpaceTensors,  # type: ignore[no-untyped-def]
                       scores: list[np.ndarray]) -> tuple[list[np.ndarray], dict]:
    """Reorder each test group's top members head-to-head (`recommender.head_to_head`) at the
    weight and agreement that rank the split's validation groups best; the test groups play no
    part in choosing them."""
    choice = choose_head_to_head(space, split, result, tensors)
    rates = head_to_head_rates(space, result.evidence, split.test, scores)(choice.agreement)
    reranked = [head_to_head.rerank(s, r, choice.weight) for s, r in zip(scores, rates, strict=True)]
    return reranked, choice.as_manifest()


def _modellens(space: LensSpace, split: Split, config: TrainConfig, progress: Progress,
               cancel: CancelToken) -> tuple[list[np.ndarray], dict, str]:
    """Train on the split, score its test groups as served (the size prior for never-seen models,
    head-to-head otherwise); returns the scores, what training reports, and the table's note."""
    result = train(space, split.train, split.val, config, unknown_models=split.unknown_models,
                   unknown_datasets=split.unknown_datasets, progress=progress, cancel=cancel)
    tensors = SpaceTensors(space, next(result.model.parameters()).device)
    assert result.evidence is not None
    test_evidence = result.evidence.group_features(space, dataset_similarity(space), split.test)
    scores = score_groups(result.model, tensors, split.test, split.test.members, test_evidence,
                          split.unknown_models, split.unknown_datasets)
    training = {"train_seed": config.seed, "epochs_run": len(result.history), "best_epoch": result.best_epoch,
                "best_val_tau_w": result.best_val_tau, "rows_seen": result.rows_seen,
                "rows_per_second": round(result.rows_per_second),
                "seconds": round(result.seconds, 1)}
    note = ""
    if split.unknown_models:
        scores, training["cold_size_prior"] = _with_cold_size_prior(space, split, result, tensors, scores)
        note = f"never-seen models blended with the size prior at weight {training['cold_size_prior']['weight']}"
    elif len(split.val):
        scores, chosen = _with_head_to_head(space, split, result, tensors, scores)
        training["head_to_head"] = chosen
        note = (f"top {chosen['top']} reordered head-to-head at weight {chosen['weight']}, "
                f"agreement {chosen['agreement']:g}"
                if chosen["weight"] else "head-to-head weight 0 on validation: the scorer's order")
    return scores, training, note


def mean_of_runs(runs: list[tuple[dict[str, float], dict[str, dict[str, float]]]]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Every metric (overall and per task type) averaged over training runs on one split; the
    group counts are the split's, the same in every run."""
    def mean(rows: list[dict[str, float]]) -> dict[str, float]:
        out = {}
        for key in rows[0]:
            values = [row[key] for row in rows if not math.isnan(row[key])]
            if key == "groups" or key.startswith("n_groups_"):
                out[key] = rows[0][key]
            else:
                out[key] = float(np.mean(values)) if values else float("nan")
        return out

    overall = mean([o for o, _ in runs])
    by_task = {task: mean([b[task] for _, b in runs]) for task in runs[0][1]}
    return overall, by_task


def spread_note(taus: list[float], sd: float, seeds: list[int]) -> str:
    """The note of a row averaged over runs: mean of 5 training runs (seeds 0, 1, …): τw 0.6862, … (sd 0.0028)."""
    listed = ", ".join(f"{t:.4f}" for t in taus)
    return f"mean of {len(taus)} training runs (seeds {', '.join(map(str, seeds))}): τw {listed} (sd {sd:.4f})"


def run_evaluation(space: LensSpace, split: Split, config: TrainConfig, *, methods: list[str] | None = None,
                   train_seeds: list[int] | None = None, progress: Progress = no_progress,
                   cancel: CancelToken = NEVER_CANCELLED) -> EvaluationReport:
    """Every method on one split. ModelLens is trained once per seed of `train_seeds` (default: the
    config's seed) on the same split and reported as the mean of those runs: one training run is a
    draw (on the new-model split, training seeds alone move τ_w by ±0.015), and a margin over a
    baseline is only worth reporting with the spread it comes with."""
    report = EvaluationReport(split.name, config.seed, len(split.train), len(split.test))
    wanted = methods or ["modellens", *BASELINES]
    seeds = list(train_seeds) if train_seeds else [config.seed]
    steps = len(wanted) + len(seeds) - 1 if "modellens" in wanted else len(wanted)
    step = 0
    for method in wanted:
        cancel.raise_if_cancelled()
        progress(step, steps, method)
        started = time.perf_counter()
        if method == "modellens":
            runs, trainings, notes = [], [], []
            for seed in seeds:
                scores, training, note = _modellens(space, split, replace(config, seed=seed),
                                                    SubProgress(progress, step, 1, steps), cancel)
                runs.append(evaluate_by_task(split.test, scores))
                trainings.append(training)
                notes.append(note)
                step += 1
            report.training = dict(trainings[0])
            if len(runs) == 1:
                overall, by_task = runs[0]
                report.methods.append(MethodResult(method, overall, time.perf_counter() - started, notes[0], by_task))
                continue
            overall, by_task = mean_of_runs(runs)
            taus = [o["tau_w"] for o, _ in runs]
            overall["tau_w_sd"] = float(np.std(taus, ddof=1))
            report.training["runs"] = trainings
            report.methods.append(MethodResult(
                method, overall, time.perf_counter() - started, spread_note(taus, overall["tau_w_sd"], seeds), by_task,
                [{"train_seed": seed, **{k: o[k] for k in ("tau_w", "ndcg@10")}} for seed, (o, _) in zip(seeds, runs, strict=True)]))
            continue
        step += 1
        scores = BASELINES[method](space, split)
        if scores is None:
            report.methods.append(MethodResult(method, {}, time.perf_counter() - started,
                                               "not defined on a cold-start split"))
            continue
        overall, by_task = evaluate_by_task(split.test, scores)
        report.methods.append(MethodResult(method, overall, time.perf_counter() - started, "", by_task))
    progress(steps, steps, "done")
    return report
