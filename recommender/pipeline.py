"""End-to-end jobs over the store: train the ranker, evaluate it. Each is one function with
progress and cancellation, used by the CLI, the GUI and the build script alike."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from recommender import cold_prior, head_to_head
from recommender.errors import NoDataError
from recommender.evaluation import EvaluationReport, choose_head_to_head, run_evaluation
from recommender.evidence import EvidenceIndex
from recommender.frames import load_catalogue, ranking_groups
from recommender.lens_export import export_ranker
from recommender.paths import training_checkpoint, writable_parent
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, SubProgress, no_progress
from recommender.space import GroupSet, LensSpace, build_space, group_set
from recommender.splits import Split, make_split
from recommender.store import Store
from recommender.training import SpaceTensors, TrainConfig, TrainResult, train

MIN_GROUPS = 10
MIN_MODELS = 5


def prepare(store: Store, progress: Progress = no_progress, cancel: CancelToken = NEVER_CANCELLED,
            encode=None) -> tuple[LensSpace, GroupSet, dict]:  # type: ignore[no-untyped-def]
    """Catalogue → ranking groups → indexed space (text views embedded, cached)."""
    catalogue = load_catalogue(store)
    if catalogue.records.is_empty():
        raise NoDataError("the catalogue is empty: run `lensroute init` (bundled seed) or `lensroute import PATH`")
    groups = ranking_groups(catalogue)
    n_groups, n_models = groups["group_id"].n_unique(), groups["model_id"].n_unique()
    if n_groups < MIN_GROUPS or n_models < MIN_MODELS:
        raise NoDataError(
            f"too little to train on: {n_groups} ranking groups and {n_models} models with comparable results "
            f"(need at least {MIN_GROUPS} groups and {MIN_MODELS} models: datasets on which two or more models "
            "were evaluated with a metric of known direction)"
        )
    if encode is None:
        from recommender.text_encoder import default_encoder

        encode = default_encoder().encode
    space = build_space(catalogue, groups, encode, progress=progress, cancel=cancel)
    fingerprint = hashlib.sha256(
        groups.select("group_id", "model_id", "y").sort("group_id", "model_id").hash_rows(seed=0).to_numpy().tobytes()
    ).hexdigest()[:16]
    data = {"records": catalogue.records.height, "groups": n_groups, "models": n_models,
            "datasets": groups["dataset_key"].n_unique(), "fingerprint": fingerprint}
    metrics = {}
    with store.engine.connect() as conn:
        for name, higher in conn.exec_driver_sql("SELECT name, higher_is_better FROM metrics").fetchall():
            metrics[name] = bool(higher) if higher is not None else True
    data["metric_higher"] = metrics
    return space, group_set(space, groups), data


@dataclass
class FittedRanker:
    """What training gives before export: the refitted model and what the manifest reports."""

    space: LensSpace
    groups: GroupSet
    data: dict
    metric_higher: dict[str, bool]
    validation: TrainResult
    final: TrainResult
    head_to_head: dict
    started: float


def fit_ranker(store: Store, config: TrainConfig, out: Path, *, resume: bool = False, choose: bool = True,
               progress: Progress = no_progress, cancel: CancelToken = NEVER_CANCELLED, encode=None) -> FittedRanker:  # type: ignore[no-untyped-def]
    """Early stopping needs held-out data, so a first run holds out 10% of the dataset names
    (the question the ranker will be asked is "a dataset it has not seen"); the final model is
    then refitted on everything for the epoch count that run found best. The validation run keeps a
    checkpoint beside `out` that `resume` continues. Under torchrun every rank runs this (the
    same decisions on the same weights); `choose` is False where the head-to-head weight is not
    needed (ranks that do not export)."""
    started = time.perf_counter()
    writable_parent(out)
    space, groups, data = prepare(store, SubProgress(progress, 0, 1, 4), cancel, encode)
    metric_higher = data.pop("metric_higher")
    split = make_split(space, groups, "new-dataset", seed=config.seed, test_share=0.10)
    # the split's own test part is not used here: its datasets rejoin the training set below
    validation = train(space, _union(split.train, split.test), split.val, config, unknown_datasets=True,
                       checkpoint=training_checkpoint(out), resume=resume,
                       progress=SubProgress(progress, 1, 1, 4), cancel=cancel)
    chosen = _choose_head_to_head(space, split, validation) if choose else {}
    final_config = replace(config, epochs=validation.best_epoch + 1)
    final = train(space, groups, groups.subset([]), final_config, progress=SubProgress(progress, 2, 1, 4), cancel=cancel)
    return FittedRanker(space, groups, data, metric_higher, validation, final, chosen, started)


def export_fitted(fitted: FittedRanker, config: TrainConfig, out: Path, extra: dict | None = None,
                  progress: Progress = no_progress) -> dict:
    """Export the ranker folder and remove the training checkpoint (a checkpoint on disk means an
    unfinished training); returns the manifest."""
    space, groups, validation, final = fitted.space, fitted.groups, fitted.validation, fitted.final
    evidence = EvidenceIndex.from_groups(space, groups)
    progress(3, 4, "exporting to ONNX")
    manifest = export_ranker(final.model, space, groups, evidence, out, {
        "train_config": config.as_dict(), "data": fitted.data,
        "cold_size_prior": {"weight": cold_prior.DEFAULT_WEIGHT,
                            "median_log10_parameters": cold_prior.median_log_size(space.n_parameters)},
        "head_to_head": fitted.head_to_head,
        "validation": {"split": "new-dataset (10% of dataset names)", "best_epoch": validation.best_epoch,
                       "best_val_tau_w": validation.best_val_tau, "history": validation.history},
        "training": {"rows_seen": validation.rows_seen + final.rows_seen, "refit_epochs": len(final.history),
                     "seconds": round(time.perf_counter() - fitted.started, 1),
                     "rows_per_second": round((validation.rows_trained + final.rows_trained)
                                              / max(validation.seconds + final.seconds, 1e-9)),
                     **({"resumed_after_epoch": validation.resumed_epochs} if validation.resumed_epochs else {})},
        **(extra or {}),
    }, fitted.metric_higher)
    training_checkpoint(out).unlink(missing_ok=True)
    progress(4, 4, "done")
    return manifest


def train_ranker(store: Store, config: TrainConfig, out: Path, *, resume: bool = False,
                 progress: Progress = no_progress, cancel: CancelToken = NEVER_CANCELLED, encode=None) -> dict:  # type: ignore[no-untyped-def]
    """Train on the whole catalogue (`fit_ranker`) and export the ranker folder; returns its manifest."""
    fitted = fit_ranker(store, config, out, resume=resume, progress=progress, cancel=cancel, encode=encode)
    return export_fitted(fitted, config, out, progress=progress)


def _choose_head_to_head(space: LensSpace, split: Split, validation) -> dict:  # type: ignore[no-untyped-def]
    """The head-to-head weight and agreement (`recommender.head_to_head`) that order the held-out
    validation datasets best under the validation run's scorer; no validation groups: weight 0."""
    if not len(split.val) or validation.evidence is None:
        return head_to_head.Choice.fixed(0.0, 0.0).as_manifest()
    tensors = SpaceTensors(space, next(validation.model.parameters()).device)
    return choose_head_to_head(space, split, validation, tensors).as_manifest()


def _union(a: GroupSet, b: GroupSet) -> GroupSet:
    return GroupSet(a.keys + b.keys, a.base + b.base, np.concatenate([a.dataset, b.dataset]),
                    np.concatenate([a.task, b.task]), np.concatenate([a.metric, b.metric]), a.members + b.members,
                    a.y + b.y, a.z + b.z)


@dataclass
class EvaluationRun:
    reports: list[EvaluationReport] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # split → why it could not run on this catalogue


def evaluate_splits(store: Store, split_names: list[str], config: TrainConfig, *, methods: list[str] | None = None,
                    train_seeds: list[int] | None = None, progress: Progress = no_progress,
                    cancel: CancelToken = NEVER_CANCELLED, encode=None) -> EvaluationRun:  # type: ignore[no-untyped-def]
    """Several splits over one prepared space (the text views are embedded once). A split this
    catalogue cannot make (no release dates for new-model, say) is skipped with its reason, so
    "every split" still reports the others. The splits are drawn with the config's seed; ModelLens
    trains once per seed of `train_seeds` on each (`run_evaluation`)."""
    steps = 1 + 4 * len(split_names)
    space, groups, data = prepare(store, SubProgress(progress, 0, 1, steps), cancel, encode)
    data = {k: v for k, v in data.items() if k != "metric_higher"}
    run = EvaluationRun()
    for i, split_name in enumerate(split_names):
        try:
            split = make_split(space, groups, split_name, seed=config.seed)
            if not len(split.test):
                raise NoDataError(f"the {split_name} split left no test group with two or more models")
        except NoDataError as exc:
            run.skipped[split_name] = str(exc)
            continue
        report = run_evaluation(space, split, config, methods=methods, train_seeds=train_seeds,
                                progress=SubProgress(progress, 1 + 4 * i, 4, steps), cancel=cancel)
        report.training["data"] = data
        run.reports.append(report)
    progress(steps, steps, "done")
    return run


def manifest_summary(manifest: dict) -> str:
    return json.dumps({k: manifest.get(k) for k in ("model_version", "created_at", "data", "parity")}, default=str)
