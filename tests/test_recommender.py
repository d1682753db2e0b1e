"""ModelLens: metrics, frames, splits, training, ONNX export and the ranker, on real fixture data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recommender.errors import (
    FormatError,
    NoDataError,
    NotFoundError,
    RuntimeUnavailableError,
    UsageError,
)
from recommender.frames import load_catalogue, ranking_groups
from recommender.ingest import import_paths
from recommender.metrics import hit_at_k, ndcg_at_k, recall_at_k, weighted_kendall_tau
from recommender.store import Store
from tests.conftest import RAW, REPO, run_torchrun

# --- metrics -------------------------------------------------------------------------------------


def test_weighted_tau_weights_the_truly_best_most() -> None:
    truth = np.arange(10, 0, -1, dtype=float)  # item 0 is the best
    perfect = truth.copy()
    top_swapped = truth.copy()
    top_swapped[[0, 1]] = top_swapped[[1, 0]]
    bottom_swapped = truth.copy()
    bottom_swapped[[8, 9]] = bottom_swapped[[9, 8]]
    assert weighted_kendall_tau(truth, perfect) == pytest.approx(1.0)
    assert weighted_kendall_tau(truth, -truth) == pytest.approx(-1.0)
    assert weighted_kendall_tau(truth, top_swapped) < weighted_kendall_tau(truth, bottom_swapped) < 1.0


def test_ranking_metrics_at_k() -> None:
    truth = np.array([0.9, 0.5, 0.1, 0.3])
    good = np.array([4.0, 3.0, 1.0, 2.0])
    assert ndcg_at_k(truth, good, 2) == pytest.approx(1.0)
    assert hit_at_k(truth, np.array([1.0, 2.0, 3.0, 4.0]), 1) == 0.0
    assert hit_at_k(truth, good, 1) == 1.0
    assert recall_at_k(truth, np.array([4.0, 1.0, 3.0, 2.0]), 2) == 0.5
    assert np.isnan(ndcg_at_k(truth, good, 5))  # a group counts at K only with ≥ K models


# --- frames ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_records(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Store:
    """Every record of ../shared/data in one SQLite catalogue, imported once for the tests below."""
    from recommender.ingest import import_paths

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('all') / 'all.db'}")
    assert not import_paths(store, [shared_data / "records"]).failed
    return store


def test_groups_are_the_same_bits_every_time_on_all_the_shared_data(all_records: Store) -> None:
    """The z-scores every ranker trains on: polars' grouped mean and std sum in a thread-dependent
    order, and on the whole corpus four builds in one process gave four different sets of last
    bits (measured), which training amplified into different rankers from one seed."""
    catalogue = load_catalogue(all_records)
    builds = [ranking_groups(catalogue) for _ in range(4)]
    assert builds[0].height > 100_000
    assert all(b.equals(builds[0]) and b["z"].to_numpy().tobytes() == builds[0]["z"].to_numpy().tobytes() for b in builds)
    per_group = builds[0].group_by("group_id").agg(pl.col("z").mean().alias("m"), pl.col("z").std(ddof=0).alias("s"),
                                                   ((pl.col("y").max() - pl.col("y").min()) / pl.col("y").abs().max()).alias("spread"))
    assert np.allclose(per_group["m"].to_numpy(), 0, atol=1e-9) and np.allclose(per_group["s"].to_numpy(), 1, atol=1e-9)
    # no leaderboard is ranked by how a source printed a tie (two MTEB ones were: 0.7633333333333334 × 13, 0.763333)
    assert per_group["spread"].min() > 1e-6


REPEAT_TRAINING = """
import hashlib, sys
import numpy as np
from recommender.pipeline import prepare
from recommender.splits import make_split
from recommender.store import Store
from recommender.training import TrainConfig, train

def encode(texts):  # a stand-in for MiniLM: fixed vectors per text, so only training can differ
    return np.stack([np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)).normal(size=384)
                     for t in texts]).astype(np.float32)

space, groups, _ = prepare(Store(sys.argv[1]), encode=encode)
split = make_split(space, groups, "new-dataset", seed=0)
result = train(space, split.train, split.val, TrainConfig(epochs=1), unknown_datasets=True)
weights = b"".join(v.numpy().tobytes() for v in result.model.state_dict().values())
print(hashlib.sha256(weights).hexdigest(), repr(result.best_val_tau))
"""


def test_training_on_all_the_shared_data_is_repeatable_bit_for_bit(all_records: Store) -> None:
    """Same catalogue, same seed, three fresh processes: the same weights. Before the z-scores were
    summed in a fixed order, two runs of `lensroute evaluate` reported 0.6661 and 0.6662."""
    runs = [subprocess.run([sys.executable, "-c", REPEAT_TRAINING, all_records.url], capture_output=True, text=True,
                           timeout=600, cwd=REPO) for _ in range(3)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr[-2000:]
    outputs = [run.stdout.strip().splitlines()[-1] for run in runs]
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_tie_printed_to_different_precisions_is_still_a_tie() -> None:
    from recommender.frames import Catalogue

    def rows(dataset: str, values: list[float]) -> list[dict]:
        return [{"model_id": i + 1, "dataset_id": 1, "dataset": dataset, "subset": None, "task": "Classification",
                 "metric": "accuracy", "higher_is_better": True, "value": v, "variant": None, "source": "mteb"}
                for i, v in enumerate(values)]

    records = pl.DataFrame(rows("all-tied", [0.7633333333333334, 0.7633333333333334, 0.763333])
                           + rows("two-tied", [0.5, 0.7633333333333334, 0.763333]))
    groups = ranking_groups(Catalogue(records, pl.DataFrame(), pl.DataFrame()))
    assert set(groups["dataset_key"]) == {"two-tied"}  # nothing to rank where all are tied
    z = groups.sort("model_id")["z"].to_list()
    assert z[1] == z[2] and z[0] < z[1]


def test_groups_flip_lower_is_better_and_standardise(fixture_store: Store) -> None:
    groups = ranking_groups(load_catalogue(fixture_store))
    logloss = groups.filter(pl.col("metric") == "logloss")
    assert logloss.height and (logloss["y"] <= 0).all()  # sign-flipped: higher y is better
    per_group = groups.group_by("group_id").agg(pl.col("z").mean().alias("m"), pl.col("z").std(ddof=0).alias("s"), pl.len())
    assert per_group["len"].min() >= 2
    assert np.allclose(per_group["m"].to_numpy(), 0, atol=1e-9)
    assert np.allclose(per_group["s"].to_numpy(), 1, atol=1e-9)
    parts = groups.filter(pl.col("dataset_key").str.starts_with("reward-bench/RewardBench 2 ["))
    assert parts.height and set(parts["base_dataset"]) == {"reward-bench/RewardBench 2"}


def test_empty_catalogue_says_how_to_fill_it(tmp_path: Path, encoder: Path) -> None:
    from recommender.pipeline import prepare

    with pytest.raises(NoDataError, match="lensroute init"):
        prepare(Store(f"sqlite:///{tmp_path / 'empty.db'}"))


def test_too_small_catalogue_names_what_is_missing(tmp_path: Path, encoder: Path) -> None:
    from recommender.pipeline import prepare

    store = Store(f"sqlite:///{tmp_path / 'small.db'}")
    import_paths(store, [RAW / "aider/aider/website/_data/refactor_leaderboard.yml"])
    with pytest.raises(NoDataError, match="too little to train on: 4 ranking groups"):
        prepare(store)


# --- splits, training, export, ranking --------------------------------------------------------------


@pytest.fixture
def prepared(fixture_store: Store, encoder: Path):  # type: ignore[no-untyped-def]
    from recommender.pipeline import prepare

    return prepare(fixture_store)


def test_splits_are_reproducible_and_keep_dataset_parts_together(prepared) -> None:  # type: ignore[no-untyped-def]
    from recommender.splits import make_split

    space, groups, _ = prepared
    first = make_split(space, groups, "new-dataset", seed=0)
    again = make_split(space, groups, "new-dataset", seed=0)
    assert first.test.keys == again.test.keys
    assert not set(first.test.base) & set(first.train.base)
    assert not set(first.val.base) & set(first.train.base)
    other = make_split(space, groups, "new-dataset", seed=1)
    assert other.test.keys != first.test.keys
    random = make_split(space, groups, "random", seed=0)
    assert len(random.train) and len(random.test)
    with pytest.raises(UsageError):
        make_split(space, groups, "by-vibes")


def test_training_twice_with_one_seed_gives_the_same_model(prepared) -> None:  # type: ignore[no-untyped-def]
    import torch

    from recommender.splits import make_split
    from recommender.training import TrainConfig, train

    space, groups, _ = prepared
    split = make_split(space, groups, "new-dataset", seed=0)
    runs = [train(space, split.train, split.val, TrainConfig(epochs=2, seed=seed), unknown_datasets=True) for seed in (0, 0, 1)]
    first, again, other = (r.model.state_dict() for r in runs)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert runs[0].history == runs[1].history
    assert not all(torch.equal(first[k], other[k]) for k in first)

def test_a_refit_without_validation_groups_keeps_its_last_epoch(prepared) -> None:  # type: ignore[no-untyped-def]
    """The shipped ranker is refitted on everything for the epoch count validation chose: with no
    held-out groups there is nothing to stop early on or to pick an epoch by, so every epoch runs
    and the last one is the model (it used to come back with the first epoch's weights)."""
    import torch

    from recommender.training import TrainConfig, train

    space, groups, _ = prepared
    none = groups.subset([])
    one = train(space, groups, none, TrainConfig(epochs=1, patience=1))
    three = train(space, groups, none, TrainConfig(epochs=3, patience=1))
    assert [h["epoch"] for h in three.history] == [0, 1, 2] and three.best_epoch == 2  # patience does not cut it short
    first, last = one.model.state_dict(), three.model.state_dict()
    assert not all(torch.equal(first[k], last[k]) for k in first)


def test_new_model_split_needs_release_dates(prepared) -> None:  # type: ignore[no-untyped-def]
    from recommender.splits import make_split

    space, groups, _ = prepared
    with pytest.raises(NoDataError, match="release dates"):
        make_split(space, groups, "new-model")


def test_new_model_evaluation_chooses_the_size_prior_weight_on_validation(prepared) -> None:  # type: ignore[no-untyped-def]
    """The fixtures have no release dates: give every model one, so the newest can be held out."""
    from dataclasses import replace

    from recommender import cold_prior
    from recommender.evaluation import run_evaluation
    from recommender.splits import make_split
    from recommender.training import TrainConfig

    space, groups, _ = prepared
    dated = replace(space, release_date=[f"2024-01-{1 + i % 28:02d}" for i in range(len(space.release_date))])
    split = make_split(dated, groups, "new-model", seed=0)
    report = run_evaluation(dated, split, TrainConfig(epochs=1), methods=["modellens", "model-size"])
    prior = report.training["cold_size_prior"]
    assert prior["weight"] in cold_prior.WEIGHT_GRID
    assert set(prior["val_tau_w_by_weight"]) == {str(w) for w in cold_prior.WEIGHT_GRID}
    assert "size prior" in report.methods[0].note and report.methods[0].metrics


def test_new_dataset_evaluation_reorders_head_to_head_at_a_validation_weight(prepared) -> None:  # type: ignore[no-untyped-def]
    from recommender import head_to_head
    from recommender.evaluation import run_evaluation
    from recommender.splits import make_split
    from recommender.training import TrainConfig

    space, groups, _ = prepared
    split = make_split(space, groups, "new-dataset", seed=0)
    report = run_evaluation(space, split, TrainConfig(epochs=1), methods=["modellens", "head-to-head"])
    chosen = report.training["head_to_head"]
    assert chosen["weight"] in head_to_head.WEIGHT_GRID and chosen["top"] == head_to_head.RERANK_TOP
    assert set(chosen["val_tau_w_by_weight"]) == {str(w) for w in head_to_head.WEIGHT_GRID}
    assert chosen["agreement"] in head_to_head.AGREEMENT_GRID
    assert set(chosen["val_tau_w_by_agreement"]) == {str(a) for a in head_to_head.AGREEMENT_GRID}
    assert "head-to-head" in report.methods[0].note
    alone = report.methods[1]
    assert alone.method == "head-to-head" and 0.0 < alone.metrics["n_groups_tau_w"] <= len(split.test)


def test_evaluation_over_several_training_seeds_reports_their_mean_and_spread(prepared) -> None:  # type: ignore[no-untyped-def]
    """Training is repeatable, so the mean over seeds 0 and 1 must equal the mean of two single-seed
    evaluations exactly; the baselines do not depend on the training seeds."""
    from recommender.evaluation import run_evaluation
    from recommender.splits import make_split
    from recommender.training import TrainConfig

    space, groups, _ = prepared
    split = make_split(space, groups, "new-dataset", seed=0)
    config = TrainConfig(epochs=2)
    single = [run_evaluation(space, split, TrainConfig(epochs=2, seed=s), methods=["modellens"]).methods[0] for s in (0, 1)]
    assert single[0].metrics["tau_w"] != single[1].metrics["tau_w"]  # the seeds give two different runs
    report = run_evaluation(space, split, config, methods=["modellens", "model-size"], train_seeds=[0, 1])
    both, size = report.methods
    defined = [k for k, v in single[0].metrics.items() if not k.startswith("n_groups") and np.isfinite(v)]
    assert {"tau_w", "ndcg@1", "hit@1"} <= set(defined)
    for key in defined:
        assert both.metrics[key] == pytest.approx(np.mean([r.metrics[key] for r in single]), abs=1e-12)
    assert both.metrics["n_groups_tau_w"] == single[0].metrics["n_groups_tau_w"]
    assert both.metrics["tau_w_sd"] == pytest.approx(np.std([r.metrics["tau_w"] for r in single], ddof=1), abs=1e-12)
    assert [r["train_seed"] for r in both.runs] == [0, 1]
    assert [r["tau_w"] for r in both.runs] == [r.metrics["tau_w"] for r in single]
    task = next(iter(both.by_task))
    assert both.by_task[task]["groups"] == single[0].by_task[task]["groups"]
    assert both.by_task[task]["tau_w"] == pytest.approx(np.mean([r.by_task[task]["tau_w"] for r in single]), abs=1e-12)
    assert both.note.startswith("mean of 2 training runs (seeds 0, 1): τw ")
    assert [r["train_seed"] for r in report.training["runs"]] == [0, 1] and report.seed == 0
    alone = run_evaluation(space, split, config, methods=["model-size"]).methods[0].metrics
    assert json.dumps(size.metrics) == json.dumps(alone)  # NaN where undefined in both
    payload = report.as_json()["methods"]
    assert [r["train_seed"] for r in payload[0]["runs"]] == [0, 1] and "runs" not in payload[1]


def test_seed_lists_parse_ranges_and_refuse_nonsense() -> None:
    import argparse

    from app.cli.arguments import MAX_SEEDS, seed_list

    assert seed_list("0-4") == [0, 1, 2, 3, 4]
    assert seed_list("3, 0-1,7") == [3, 0, 1, 7]
    assert seed_list("5") == [5]
    assert len(seed_list(f"0-{MAX_SEEDS - 1}")) == MAX_SEEDS
    for bad in ("", "a", "1,,2", "3-1", "-1", "1,1", "0-2,2", f"0-{MAX_SEEDS}", "0-999999999999"):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_list(bad)


def test_trained_ranker_ranks_known_and_unseen_models(ranker_dir: Path, tmp_path: Path) -> None:
    from recommender.ranker import Candidate, Ranker

    manifest = json.loads((ranker_dir / "manifest.json").read_text())
    # refitted on everything for the epochs validation chose (the set-up retrains a ranker without this)
    assert manifest["training"]["refit_epochs"] == manifest["validation"]["best_epoch"] + 1
    ranker = Ranker.load(ranker_dir, device="cpu")
    ranking = ranker.rank("Write Python functions from docstrings that pass unit tests", task="code-generation",
                          metric="pass@1", top_k=5)
    payload = ranking.as_json()
    assert set(payload) >= {"query", "model_version", "results"}
    assert [r["rank"] for r in payload["results"]] == [1, 2, 3, 4, 5]
    assert all(set(r) >= {"rank", "model", "score", "known", "evidence"} for r in payload["results"])
    assert all(r["known"] and r["evidence"] for r in payload["results"])
    scores = [r["score"] for r in payload["results"]]
    assert scores == sorted(scores, reverse=True)

    candidates = [Candidate("WizardLM/WizardCoder-15B-V1.0"),
                  Candidate("acme/brand-new-coder-7b", n_parameters=7e9, description="A code model for Python")]
    mixed = ranker.rank("Python code generation", task="code-generation", metric="pass@1", top_k=0, candidates=candidates)
    flags = {r.model: r.known for r in mixed.results}
    assert flags == {"WizardLM/WizardCoder-15B-V1.0": True, "acme/brand-new-coder-7b": False}
    assert len(mixed.results) == 2
    assert not any("named like catalogued models" in note for note in mixed.notes)
    typo = ranker.rank("Python code generation", task="code-generation", top_k=0,
                       candidates=[*candidates, Candidate("wizardcoder 15b v1.0")])  # a typo is named, still ranked
    assert ("never-seen candidates named like catalogued models, ranked from their names alone: 'wizardcoder 15b v1.0' "
            "(did you mean 'WizardLM/WizardCoder-15B-V1.0'?)") in typo.notes and len(typo.results) == 3

    # never-seen candidates that differ only in size: the size prior orders them, known ones keep their score
    twins = [Candidate("WizardLM/WizardCoder-15B-V1.0"), *(Candidate(f"acme/twin-{i}", n_parameters=n, description="A code model")
                                                          for i, n in enumerate((1e8, 3e10, 2e9)))]
    ranker.cold_weight = 0.0
    plain = {r.model: r.score for r in ranker.rank("Python code generation", task="code-generation", metric="pass@1",
                                                    top_k=0, candidates=twins).results}
    ranker.cold_weight = 100.0
    sized = ranker.rank("Python code generation", task="code-generation", metric="pass@1", top_k=0, candidates=twins)
    unseen = [r.model for r in sized.results if not r.known]
    assert unseen == ["acme/twin-1", "acme/twin-2", "acme/twin-0"]
    scores = {r.model: r.score for r in sized.results}
    assert abs(scores["WizardLM/WizardCoder-15B-V1.0"] - plain["WizardLM/WizardCoder-15B-V1.0"]) < 1e-6
    assert abs(np.mean([scores[m] for m in unseen]) - np.mean([plain[m] for m in unseen])) < 1e-4

    named = ranker.rank("Python code generation", task="code-generation", metric="pass@1", top_k=0,
                        candidates=[Candidate("acme/tiny-coder-135M"), Candidate("acme/big-coder-34b"), Candidate("acme/coder"),
                                    Candidate("WizardLM/WizardCoder-15B-V1.0")])
    unseen = [r.model for r in named.results if not r.known]
    assert unseen[:2] == ["acme/big-coder-34b", "acme/coder"]  # unknown size: the median
    assert any(n.endswith("sizes read from candidate names: acme/tiny-coder-135M (0.135B), acme/big-coder-34b (34B)")
               for n in named.notes)  # not WizardCoder's: the catalogue records it


def test_release_dates_are_read_leniently() -> None:
    from recommender.features import RELEASE_SCALE, release_years

    assert release_years("2024-01-01") == 0.0 and release_years("2025-07-01") == pytest.approx(1.5 / RELEASE_SCALE)
    assert release_years("2025-07") == release_years("2025-07-15") == release_years("2025")  # mid-month, mid-year
    assert release_years("2025-07-01T12:00:00Z") == release_years("2025-07-01")  # a timestamp: its date
    for unreadable in (None, "", "soon", "2025-13-01", "0000-01-01", "20-25"):
        assert release_years(unreadable) == 0.0  # the unknown value: the prior's recency term adds nothing


def test_a_never_seen_candidates_release_date_moves_it_by_the_learned_recency_slope(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`--candidates` may give a release date; the scorer's prior has a per-task slope on it (as on
    size), so two never-seen candidates alike but for their dates differ by exactly that, through
    the exported ONNX scorer. The fixtures have no release dates: the models are given some."""
    from dataclasses import replace

    from recommender.evidence import EvidenceIndex
    from recommender.features import RELEASE_COLUMN, release_years
    from recommender.lens_export import export_ranker
    from recommender.ranker import Candidate, Ranker
    from recommender.training import TrainConfig, train

    space, groups, _ = prepared
    dates = [None, *(f"{2020 + i % 6}-{1 + i % 12:02d}-01" for i in range(len(space.release_date) - 1))]
    numeric = space.numeric.copy()
    numeric[:, RELEASE_COLUMN] = [release_years(d) for d in dates]
    dated = replace(space, release_date=dates, numeric=numeric)
    result = train(dated, groups, groups.subset([]), TrainConfig(epochs=2))
    out = tmp_path / "dated-ranker"
    export_ranker(result.model, dated, groups, EvidenceIndex.from_groups(dated, groups), out, {}, {})
    ranker = Ranker.load(out, device="cpu")
    ranker.cold_weight = 0.0  # the size-prior blend aside: the scorer's own scores

    def score(date: str | None) -> float:
        ranking = ranker.rank("Python code generation", task="code-generation", metric="pass@1", top_k=0,
                              candidates=[Candidate("acme/new-coder", n_parameters=7e9, release_date=date)])
        return ranking.results[0].score

    newer, older, undated = score("2026-06-01"), score("2020-06-01"), score(None)
    slope = float(result.model.prior_recency.weight[ranker.tasks.index("code-generation") + 1, 0].detach())
    assert slope != 0.0  # learned from the dated models' results
    assert newer - older == pytest.approx(slope * (release_years("2026-06-01") - release_years("2020-06-01")), abs=1e-4)
    assert undated == pytest.approx(older + slope * (0.0 - release_years("2020-06-01")), abs=1e-4)


def test_measured_results_join_the_ranking_in_their_measured_order(ranker_dir: Path) -> None:
    from recommender.measured import MeasuredResult
    from recommender.ranker import Ranker

    ranker = Ranker.load(ranker_dir, device="cpu")
    query = {"task": "code-generation", "metric": "pass@1", "top_k": 0}
    plain = ranker.rank("Python code generation", **query)
    first, second, third = (r.model for r in plain.results[:3])
    assert plain.query["measured"] == 0 and all(r.measured is None for r in plain.results)
    # measured the other way round from the prediction, plus a model of another kind and one the catalogue lacks
    other = next(m for i, m in enumerate(ranker.models) if ranker.trained[i + 1] and
                 m not in {r.model for r in plain.results})
    measured = [MeasuredResult(third, 0.61), MeasuredResult(second, 0.40), MeasuredResult(first, 0.22),
                MeasuredResult(other, 0.10), MeasuredResult("acme/never-heard-of-it", 0.5)]
    mine = ranker.rank("Python code generation", **query, measured=measured)
    order = [r.model for r in mine.results]
    assert order.index(third) < order.index(second) < order.index(first)
    assert other in order  # a measured model is listed even when it was no candidate of this task type
    values = {r.model: r.measured for r in mine.results if r.measured is not None}
    assert values == {third: 0.61, second: 0.40, first: 0.22, other: 0.10}
    assert mine.query["measured"] == 4 and len(mine.results) == len(plain.results) + 1
    assert any("not compared: acme/never-heard-of-it" in n for n in mine.notes)
    assert any(n.startswith("head-to-head votes sharpened by agreement with your 4 measured results") for n in mine.notes)
    assert mine.as_json()["results"][order.index(third)]["measured"] == 0.61
    # the candidates the user did not measure keep their places relative to each other
    rest = [m for m in order if m not in values]
    assert set(rest) == {r.model for r in plain.results} - set(values)
    two = ranker.rank("Python code generation", **query, measured=measured[:2])
    assert any("from 3 catalogued models on (got 2)" in n for n in two.notes)
    kept = [r.model for r in two.results if r.measured is not None]
    assert kept == [third, second]  # still listed in their measured order


def test_measured_results_files_and_their_faults(tmp_path: Path) -> None:
    from recommender.errors import FormatError, NotFoundError
    from recommender.measured import MeasuredResult, oriented, read_measured

    csv_file = tmp_path / "mine.csv"
    csv_file.write_bytes(b"\xef\xbb\xbfmodel,value\nacme/a,0.5\nacme/b,0.75\n")
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text('{"model": "acme/a", "value": 0.5}\n\n{"model": "acme/b", "value": "0.75"}\n')
    expected = [MeasuredResult("acme/a", 0.5), MeasuredResult("acme/b", 0.75)]
    assert read_measured(csv_file) == expected and read_measured(jsonl) == expected
    assert list(oriented(np.array([0.5, 0.75]), False)) == [-0.5, -0.75]
    faults = {"model,score\nacme/a,1\n": "needs 'model' and 'value' columns",
              "model,value\n": "needs 'model' and 'value' columns",
              "model,value\nacme/a,high\n": "row 1: value 'high' is not a number",
              "model,value\nacme/a,nan\n": "row 1: value 'nan' is not a finite number",
              "model,value\n,0.5\n": "row 1: empty model name",
              "model,value\nacme/a,1\nACME/A,2\n": "row 2: ACME/A was already measured in row 1"}
    for text, message in faults.items():
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(FormatError, match=message):
            read_measured(bad)
    broken = tmp_path / "bad.jsonl"
    broken.write_text('{"model": "acme/a", "value": 1}\n{"model": \n')
    with pytest.raises(FormatError, match="line 2"):
        read_measured(broken)
    with pytest.raises(NotFoundError):
        read_measured(tmp_path / "missing.csv")


def test_candidates_files_from_windows_tools_and_repeated_models(ranker_dir: Path, tmp_path: Path) -> None:
    """Excel and Windows editors start UTF-8 with a byte-order mark (it used to hide the 'model'
    column); a model named twice, under any spelling of it, is ranked once and the output says so."""
    from recommender.ranker import Candidate, Ranker, read_candidates

    rows = [("WizardLM/WizardCoder-15B-V1.0", ""), ("acme/new-coder", "7e9")]
    as_csv = tmp_path / "c.csv"
    as_csv.write_bytes(b"\xef\xbb\xbf" + ("model,n_parameters\n" + "".join(f"{m},{n}\n" for m, n in rows)).encode())
    as_jsonl = tmp_path / "c.jsonl"
    as_jsonl.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps({"model": m, **({"n_parameters": float(n)} if n else {})}) + "\n"
                                                   for m, n in rows).encode())
    for path in (as_csv, as_jsonl):
        read = read_candidates(path)
        assert [(c.model, c.n_parameters) for c in read] == [("WizardLM/WizardCoder-15B-V1.0", None), ("acme/new-coder", 7e9)]

    ranker = Ranker.load(ranker_dir, device="cpu")
    repeated = [Candidate("WizardLM/WizardCoder-15B-V1.0"), Candidate("acme/new-coder"),
                Candidate("wizardlm/wizardcoder-15b-v1.0"), Candidate("ACME/new-coder")]
    ranking = ranker.rank("Python code generation", task="code-generation", metric="pass@1", top_k=0, candidates=repeated)
    assert sorted(r.model for r in ranking.results) == ["WizardLM/WizardCoder-15B-V1.0", "acme/new-coder"]
    assert ranking.query["candidates"] == 2
    assert any(note.startswith("2 candidate line(s) named a model already listed and were dropped: "
                               "wizardlm/wizardcoder-15b-v1.0, ACME/new-coder") for note in ranking.notes)


def test_ranker_reorders_its_top_candidates_head_to_head(ranker_dir: Path) -> None:
    import json

    from recommender.ranker import Ranker

    manifest = json.loads((ranker_dir / "manifest.json").read_text())
    assert set(manifest["head_to_head"]) >= {"weight", "agreement", "top", "val_tau_w_by_weight"}
    ranker = Ranker.load(ranker_dir, device="cpu")
    assert ranker.h2h_agreement == manifest["head_to_head"]["agreement"]
    query = dict(task="code-generation", metric="pass@1", top_k=0)
    ranker.h2h_weight = 0.0
    plain = ranker.rank("Write Python functions from docstrings that pass unit tests", **query)
    assert all(r.head_to_head is None for r in plain.results)
    ranker.h2h_weight, ranker.h2h_agreement = 1e6, 0.0  # the (unsharpened) win rate alone orders the reordered candidates
    reordered = ranker.rank("Write Python functions from docstrings that pass unit tests", **query)
    rated = [r for r in reordered.results if r.head_to_head is not None]
    assert len(rated) == min(len(reordered.results), 100) >= 2
    rates = [r.head_to_head for r in rated]
    assert rates == sorted(rates, reverse=True) and rates[0] > rates[-1]
    assert [r.score for r in reordered.results] == [r.score for r in plain.results]  # same values, new order
    assert any("head-to-head" in note for note in reordered.notes)
    assert reordered.as_json()["results"][0]["head_to_head"] == round(rates[0], 4)
    ranker.h2h_agreement = 4.0  # votes sharpened by agreement: same candidates rated, and it says so
    sharpened = ranker.rank("Write Python functions from docstrings that pass unit tests", **query)
    assert sum(r.head_to_head is not None for r in sharpened.results) == len(rated)
    assert any("agreement with the scorer" in note for note in sharpened.notes)
    plain_rates = {r.model: r.head_to_head for r in rated}
    assert any(abs(r.head_to_head - plain_rates[r.model]) > 1e-6 for r in sharpened.results if r.head_to_head is not None)


def test_typed_task_and_metric_names_are_read_or_fall_back_and_say_so(ranker_dir: Path) -> None:
    from recommender.ranker import Ranker

    ranker = Ranker.load(ranker_dir, device="cpu")
    description = "Write Python functions from docstrings that pass unit tests"

    def ask(**query: str):  # type: ignore[no-untyped-def]
        ranking = ranker.rank(description, top_k=3, **query)
        return ranking.query["task"], ranking.query["metric"], ranking.notes

    plain_task, plain_metric, _ = ask()
    assert ask(task="Code Generation", metric="PASS@1")[:2] == ("code-generation", "pass@1")
    assert "task 'Code Generation' read as 'code-generation'" in ask(task="Code Generation")[2]
    task, metric, notes = ask(task="code-editing", metric="pass rate")  # contains: the most measured of that name
    assert (task, metric) == ("code-editing", "pass_rate_1")
    assert any("'pass rate' read as 'pass_rate_1', the most measured" in note for note in notes)
    # Nonsense never reads as some nearest name: it takes what the description alone would give.
    task, metric, notes = ask(task="Nope", metric="zzz")
    assert (task, metric) == (plain_task, plain_metric)
    assert any(note.startswith("task 'Nope' matches no task the ranker knows")
               and f"using {plain_task!r}, the task of the closest known dataset" in note for note in notes)
    assert any(note.startswith("metric 'zzz' matches no metric") for note in notes)
    task, metric, notes = ask(task="code-generation", metric="acc")  # known, but never measured for the task
    assert metric == "acc" and any("never measured on a 'code-generation' dataset" in note for note in notes)

    named = ranker.rank("", dataset="HumanEval+", top_k=3)  # a catalogued dataset, case folded; not 'humaneval'
    assert named.query["dataset"] == "humaneval+" and named.query["dataset_known"]
    assert "dataset 'HumanEval+' read as 'humaneval+'" in named.notes
    with pytest.raises(NotFoundError, match=r"dataset 'humanevl' is not in the ranker's catalogue \(did you mean "
                                            r"'humaneval'.*\); describe it with --description TEXT"):
        ranker.rank("", dataset="humanevl")


def test_reading_typed_names_by_meaning_keeps_to_close_ones() -> None:
    from recommender.query_terms import fold, read_metric, read_task

    assert fold("NDCG@10") == fold("ndcg_at_10") == fold("ndcg at 10")
    tasks = ["Retrieval", "unknown", "STS"]
    close = {"question answering": [0.65, 0.9, 0.3], "xyz": [0.52, 0.9, 0.4]}

    def similarity(wanted: str, known: list[str]) -> np.ndarray:
        table = dict(zip(tasks, close[wanted], strict=True))
        return np.array([table[k] for k in known])

    qa = read_task("question answering", tasks, similarity)
    assert (qa.index, qa.how, qa.similarity) == (0, "meaning", 0.65)  # the placeholder 'unknown' is never a reading
    xyz = read_task("xyz", tasks, similarity)
    assert (xyz.index, xyz.how, xyz.closest) == (None, "none", "Retrieval")
    metrics = ["map_at_10", "NDCG@10", "ndcg_at_10", "map_at_1000"]
    never = lambda wanted, known: np.zeros(len(known))  # noqa: E731
    assert read_metric("ndcg@10", metrics, [2, 0], [1, 3], never).index == 2  # measured for the task first
    assert read_metric("ndcg@10", metrics, [0], [3, 1, 2], never).index == 1
    assert read_metric("map", metrics, [2], [3, 0, 1], never).index == 3  # the most used elsewhere
    assert read_metric("q", metrics, [2], [0], never).index is None  # one letter contains nothing
    close_to = {"map_at_10": 0.85, "NDCG@10": 0.95, "ndcg_at_10": 0.5, "map_at_1000": 0.3}
    by_meaning = read_metric("mean avg precision", metrics, [2, 0], [1, 3],
                             lambda wanted, known: np.array([close_to[k] for k in known]))
    assert (by_meaning.index, by_meaning.how) == (0, "meaning")  # a close measured one beats a closer one elsewhere


def test_many_queries_in_one_run_match_single_rankings_and_keep_going_past_a_bad_one(ranker_dir: Path, tmp_path: Path,
                                                                                      encoder: Path) -> None:
    from recommender.batch_queries import rank_queries, read_queries
    from recommender.ranker import Ranker

    ranker = Ranker.load(ranker_dir, device="cpu")
    file = tmp_path / "queries.jsonl"
    file.write_text('{"id": "py", "description": "Write Python functions from docstrings", "top_k": 2}\n\n'
                    '{"id": 2, "dataset": "HumanEval+"}\n'
                    '{"description": "Grade-school math word problems", "task": "text generation", "language": ["fr"]}\n'
                    '{"dataset": "no-such-benchmark"}\n')
    queries = read_queries(file)
    assert [q.line for q in queries] == [1, 3, 4, 5]
    out = list(rank_queries(ranker, queries, top_k=3, metric="Exact Match"))
    assert [(o["line"], o["id"]) for o in out] == [(1, "py"), (3, 2), (4, None), (5, None)]
    alone = ranker.rank("Write Python functions from docstrings", top_k=2, metric="Exact Match").as_json()
    assert {k: v for k, v in out[0].items() if k not in ("line", "id")} == alone  # the same ranking as one at a time
    assert out[1]["query"]["dataset"] == "humaneval+" and len(out[1]["results"]) == 3  # the command's --top-k
    assert out[2]["query"]["task"] == "text-generation" and out[2]["query"]["languages"] == ["fra"]
    assert "no-such-benchmark" in out[3]["error"] and "results" not in out[3]

    # a query may carry the asker's own results, as `rank --measured` does for one
    plain = ranker.rank("Python code generation", task="code-generation", top_k=0)
    top = [r.model for r in plain.results[:3]]
    asked = json.dumps({"description": "Python code generation", "task": "code-generation", "top_k": 0,
                        "measured": [{"model": m, "value": v} for m, v in zip(top, (1, 2, 3), strict=True)]})
    (tmp_path / "m.jsonl").write_text(asked + "\n")
    [answer] = rank_queries(ranker, read_queries(tmp_path / "m.jsonl"), top_k=3)
    assert [r["model"] for r in answer["results"] if r["measured"] is not None] == top[::-1]
    assert answer["query"]["measured"] == 3

    for text, message in (('{"descripton": "x"}', r"q.jsonl:1: unknown field\(s\) 'descripton'"),
                          ('{"description": "x", "measured": {"model": "a"}}', "measured must be a list"),
                          ('{"description": "x", "measured": [{"model": "a", "value": "hi"}]}',
                           "q.jsonl:1: measured result 1: value 'hi' is not a number"),
                          ('{"description": "x", "measured": [{"model": "a", "value": true}]}', "value True is not a number"),
                          ('{"task": "STS"}', "q.jsonl:1: give a description"),
                          ('{"description": "x", "top_k": -1}', "top_k must be 0"),
                          ('["x"]', "must be a JSON object"), ("{oops", "q.jsonl:1: not JSON"), ("\n", "holds no queries")):
        (tmp_path / "q.jsonl").write_text(text + "\n")
        with pytest.raises(FormatError, match=message):
            read_queries(tmp_path / "q.jsonl")

    env = {"LENSROUTE_ENCODER_DIR": str(encoder)}
    done = run_cli("rank", "--model", str(ranker_dir), "--queries", str(file), "-q", env=env)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1 and [line["line"] for line in lines] == [1, 3, 4, 5]
    assert done.stderr.strip() == 'lensroute: error: 1 of 4 queries could not be ranked (see their "error")'
    mixed = run_cli("rank", "--model", str(ranker_dir), "--queries", str(file), "--description", "x", env=env)
    assert mixed.returncode == 2 and "drop --description" in mixed.stderr
    negative = run_cli("rank", "--model", str(ranker_dir), "--queries", str(file), "--top-k", "-1", env=env)
    assert negative.returncode == 2 and negative.stdout == "" and "--top-k must be 0" in negative.stderr

    # `--queries -`: one process answers each line as it arrives (the reply comes before the next question)
    server = subprocess.Popen([sys.executable, "-m", "app", "rank", "--model", str(ranker_dir), "--queries", "-"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                              env={**os.environ, **env})
    timer = threading.Timer(240, server.kill)
    timer.start()
    try:
        assert server.stdin is not None and server.stdout is not None
        for number, question in enumerate(('{"id": "a", "description": "Python code generation", "top_k": 1}',
                                           '{"descripton": "typo"}', '{"id": "c", "dataset": "humaneval+"}'), 1):
            server.stdin.write(question + "\n")
            server.stdin.flush()
            reply = json.loads(server.stdout.readline())
            assert reply["line"] == number
        assert reply["id"] == "c" and reply["query"]["dataset"] == "humaneval+"
        server.stdin.close()
        assert server.wait(timeout=60) == 1  # the typo was answered with an error line
        assert "1 of 3 queries could not be ranked" in server.stderr.read()  # type: ignore[union-attr]
    finally:
        timer.cancel()
        server.kill()


def test_ranker_bad_input(ranker_dir: Path, tmp_path: Path) -> None:
    from recommender.ranker import Ranker, read_candidates

    ranker = Ranker.load(ranker_dir, device="cpu")
    with pytest.raises(UsageError, match="describe the dataset"):
        ranker.rank("   ")
    bad = tmp_path / "candidates.csv"
    bad.write_text("name,size\nx,1\n")
    with pytest.raises(FormatError, match="'model' column"):
        read_candidates(bad)
    bad.write_text("model,n_parameters\nx,lots\n")
    with pytest.raises(FormatError, match="not a number"):
        read_candidates(bad)
    for size in ("-5", "0", "nan", "inf"):  # nan used to end in "unexpected error: ValueError", inf in a nan score
        bad.write_text(f"model,n_parameters\nx,{size}\n")
        with pytest.raises(FormatError, match=f"row 1: n_parameters '{size}' must be a positive number"):
            read_candidates(bad)
    broken = tmp_path / "candidates.jsonl"
    broken.write_text('{"model": "a"}\n{broken\n')
    with pytest.raises(FormatError, match=r"candidates\.jsonl line 2"):
        read_candidates(broken)
    (ranker_dir / "scorer.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(RuntimeUnavailableError, match="cannot load ONNX model"):
        Ranker.load(ranker_dir, device="cpu")


def test_no_trained_ranker_says_how_to_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender import paths
    from recommender.ranker import find_ranker_dir

    monkeypatch.setattr(paths, "resources_dir", lambda: tmp_path / "no-resources")
    with pytest.raises(RuntimeUnavailableError, match="lensroute train"):
        find_ranker_dir()


# --- the command line ---------------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env}, cwd=REPO)


def test_rank_and_evaluate_from_the_command_line(fixture_store: Store, ranker_dir: Path, encoder: Path) -> None:
    env = {"LENSROUTE_ENCODER_DIR": str(encoder)}
    done = run_cli("rank", "--model", str(ranker_dir), "--description", "Grade-school math word problems", "--top-k", "3",
                   "--json", env=env)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert len(payload["results"]) == 3 and payload["model_version"]
    empty = run_cli("rank", "--model", str(ranker_dir), "--description", "", env=env)
    assert empty.returncode == 2 and "describe the dataset" in empty.stderr and "Traceback" not in empty.stderr
    french = run_cli("rank", "--model", str(ranker_dir), "--description", "Grade-school math word problems in French",
                     "--top-k", "3", "--json", env=env)
    assert json.loads(french.stdout)["query"]["languages"] == ["fra"]
    given = run_cli("rank", "--model", str(ranker_dir), "--description", "Grade-school math word problems in French",
                    "--language", "de", "--language", "Japanese", env=env)
    assert given.returncode == 0 and "languages deu, jpn" in given.stdout
    bad = run_cli("rank", "--model", str(ranker_dir), "--description", "Math problems", "--language", "Klingonese", env=env)
    assert bad.returncode == 2 and "Klingonese" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    plain = json.loads(run_cli("rank", "--model", str(ranker_dir), "--description", "Python code generation", "--task",
                               "code-generation", "--top-k", "3", "--json", env=env).stdout)
    top = [r["model"] for r in plain["results"]]
    mine = ranker_dir.parent / "measured.jsonl"
    mine.write_text("".join(json.dumps({"model": m, "value": v}) + "\n" for m, v in zip(top, (0.2, 0.4, 0.6), strict=True)))
    measured = run_cli("rank", "--model", str(ranker_dir), "--description", "Python code generation", "--task",
                       "code-generation", "--top-k", "0", "--measured", str(mine), "--json", env=env)
    assert measured.returncode == 0, measured.stderr
    payload = json.loads(measured.stdout)
    assert [(r["model"], r["measured"]) for r in payload["results"] if r["measured"] is not None] == [
        (top[2], 0.6), (top[1], 0.4), (top[0], 0.2)]
    assert payload["query"]["measured"] == 3
    text = run_cli("rank", "--model", str(ranker_dir), "--description", "Python code generation", "--task",
                   "code-generation", "--top-k", "0", "--measured", str(mine), env=env)
    assert "[measured by you: 0.6]" in text.stdout and text.returncode == 0
    several = run_cli("rank", "--model", str(ranker_dir), "--queries", str(mine), "--measured", str(mine), env=env)
    assert several.returncode == 2 and "--measured is for one dataset" in several.stderr
    mine = ranker_dir.parent / "measured.csv"
    mine.write_text("model,value\nacme/a,fast\n")
    broken = run_cli("rank", "--model", str(ranker_dir), "--description", "Python code", "--measured", str(mine), env=env)
    assert broken.returncode == 2 and "value 'fast' is not a number" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1 and "Traceback" not in broken.stderr
    # ranking needs neither the catalogue nor the data libraries: loading SQLAlchemy and polars
    # for it cost a third of the command's start-up (measured 1.04-1.19 s before, 0.63-0.73 s after)
    code = ("import sys; from app.cli.main import main; "
            f"rc = main(['rank', '--model', {str(ranker_dir)!r}, '--description', 'Math problems', '--top-k', '1']); "
            "print(rc, sorted(m for m in ('sqlalchemy', 'polars', 'torch') if m in sys.modules), file=sys.stderr)")
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                           env={**os.environ, **env})
    assert light.stderr.strip().splitlines()[-1] == "0 []", light.stderr

    db = fixture_store.url
    trained = run_cli("--db", db, "train", "--epochs", "2", "--out", str(ranker_dir.parent / "cli-ranker"), env=env)
    assert trained.returncode == 0, trained.stderr
    assert "head-to-head reordering of the top 100: weight" in trained.stdout and "scorer alone" in trained.stdout
    report = run_cli("--db", db, "evaluate", "--split", "new-dataset", "--epochs", "3", "--json", env=env)
    assert report.returncode == 0, report.stderr
    reported = json.loads(report.stdout)
    methods = {m["method"] for m in reported["methods"]}
    assert all(sum(t["groups"] for t in m["by_task"].values()) == reported["n_test_groups"]
               for m in reported["methods"] if m["method"] != "matrix-factorisation")
    assert methods == {"modellens", "popularity", "model-size", "mean-z", "type-aware-mean-z", "text-knn",
                       "head-to-head", "matrix-factorisation", "lightgbm-lambdarank"}

    table = run_cli("--db", db, "evaluate", "--split", "new-dataset", "--methods", "model-size,mean-z", "--by-task", env=env)
    assert table.returncode == 0, table.stderr
    breakdown = table.stdout.split("τw by task type, split new-dataset (seed 0)\n")[1].splitlines()
    assert breakdown[0].split()[-3:] == ["groups", "model-size", "mean-z"]
    assert sum(int(line.split()[-3]) for line in breakdown[1:]) == reported["n_test_groups"]

    seeds = run_cli("--db", db, "evaluate", "--split", "new-dataset", "--epochs", "2", "--methods", "modellens,model-size",
                    "--train-seeds", "0-1", env=env)
    assert seeds.returncode == 0, seeds.stderr
    assert "modellens: mean of 2 training runs (seeds 0, 1): τw " in seeds.stdout
    twice = run_cli("--db", db, "evaluate", "--split", "new-dataset", "--train-seeds", "1,1", env=env)
    assert twice.returncode == 2 and "names a seed twice" in twice.stderr and "Traceback" not in twice.stderr
    pointless = run_cli("--db", db, "evaluate", "--split", "new-dataset", "--methods", "mean-z", "--train-seeds", "0-2", env=env)
    assert pointless.returncode == 2 and "--train-seeds" in pointless.stderr and len(pointless.stderr.strip().splitlines()) == 1

    every = run_cli("--db", db, "evaluate", "--split", "all", "--epochs", "2", "--methods", "modellens,model-size",
                    "--json", env=env)
    assert every.returncode == 0, every.stderr
    payload = json.loads(every.stdout)
    assert {r["split"] for r in payload["reports"]} | set(payload["skipped"]) == {"random", "new-dataset", "new-model"}
    assert all({m["method"] for m in r["methods"]} == {"modellens", "model-size"} for r in payload["reports"])
    from recommender.evaluation_log import load_reports

    kept = load_reports()  # the latest table of each split, for the GUI
    assert {(v["split"], v["seed"]) for v in kept.values()} == {(r["split"], 0) for r in payload["reports"]}
    assert all(v["database"] for v in kept.values())


def test_train_on_an_empty_catalogue_exits_4(tmp_path: Path, encoder: Path) -> None:
    done = run_cli("--db", str(tmp_path / "empty.db"), "train", env={"LENSROUTE_ENCODER_DIR": str(encoder)})
    assert done.returncode == 4 and "lensroute init" in done.stderr


@pytest.mark.slow
def test_data_parallel_training_with_two_gloo_processes(fixture_store: Store, encoder: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    out = tmp_path / "ddp-ranker"
    done = run_torchrun(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "recommender.distributed", "--db", fixture_store.url,
         "--out", str(out), "--epochs", "3"],
        timeout=600, cwd=REPO, env={**os.environ, "LENSROUTE_ENCODER_DIR": str(encoder)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"rank"')]
    assert sorted(r["rank"] for r in reports) == [0, 1] and {r["world"] for r in reports} == {2}
    assert len({r["checksum"] for r in reports}) == 1  # gradients were averaged: identical weights
    assert (out / "scorer.onnx").is_file()
    assert not (tmp_path / "ddp-ranker.checkpoint.pt").exists()  # exported: nothing left to resume
    # the same training as `lensroute train`: early stopping on held-out datasets, a refit for the
    # epochs it chose, the head-to-head weight chosen on them
    manifest = json.loads((out / "manifest.json").read_text())
    assert {k: manifest["distributed"][k] for k in ("world", "backend")} == {"world": 2, "backend": "gloo"}
    by_rank = manifest["distributed"]["rows_seen_by_rank"]
    assert len(by_rank) == 2 and by_rank[0] == manifest["training"]["rows_seen"] and all(n > 0 for n in by_rank)
    history = manifest["validation"]["history"]
    assert len(history) == 3 and all(-1.0 <= h["val_tau_w"] <= 1.0 for h in history)
    assert {r["best_epoch"] for r in reports} == {manifest["validation"]["best_epoch"]}
    assert "val_tau_w_by_weight" in manifest["head_to_head"]


def test_ranking_time_evidence_equals_training_time_evidence(prepared) -> None:  # type: ignore[no-untyped-def]
    """The vectorised serving path and the per-pair training path compute the same features."""
    from recommender.evidence import EvidenceIndex, base_index, dataset_similarity

    space, groups, _ = prepared
    evidence = EvidenceIndex.from_groups(space, groups)
    similarity = dataset_similarity(space)
    rows = np.arange(1, space.n_models)
    bases = base_index(space)
    for dataset in (1, len(space.dataset_vocab) // 2, len(space.dataset_vocab) - 1):
        task = int(groups.task[0])
        served = evidence.query_features(similarity[dataset], task, int(bases[dataset]), rows)
        trained = evidence.pair_features(similarity, rows, np.full(len(rows), dataset), np.full(len(rows), task),
                                         np.full(len(rows), bases[dataset]))
        assert np.abs(served - trained)[:, :-2].max() < 1e-5


def test_evaluation_log_keeps_the_latest_table_per_split_and_seed_and_survives_an_unwritable_home(tmp_path: Path) -> None:
    from recommender.evaluation import EvaluationReport, MethodResult
    from recommender.evaluation_log import load_reports, save_reports

    def report(split: str, seed: int, tau: float) -> EvaluationReport:
        return EvaluationReport(split, seed, 10, 3, [MethodResult("modellens", {"tau_w": tau}, 1.0)])

    log = tmp_path / "evaluations.json"
    stored, problem = save_reports([report("new-dataset", 0, 0.5), report("random", 0, 0.6)], "sqlite:///a.db", log)
    assert problem is None and set(stored) == {"new-dataset:0", "random:0"}
    save_reports([report("new-dataset", 0, 0.7), report("new-dataset", 1, 0.4)], "sqlite:///a.db", log)
    kept = load_reports(log)
    assert set(kept) == {"new-dataset:0", "new-dataset:1", "random:0"}
    assert kept["new-dataset:0"]["methods"][0]["tau_w"] == 0.7 and kept["random:0"]["methods"][0]["tau_w"] == 0.6
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    stored, problem = save_reports([report("random", 2, 0.1)], "sqlite:///a.db", blocked / "evaluations.json")
    assert "random:2" in stored and problem and "could not keep the evaluation tables" in problem
    log.write_text("{not json")
    assert load_reports(log) == {}


def test_the_evaluation_table_prints_each_method_note(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli.recommend_cmds import print_report
    from recommender.evaluation import EvaluationReport, MethodResult

    report = EvaluationReport("new-model", 0, 10, 3, [
        MethodResult("modellens", {"tau_w": 0.26}, 1.0, "never-seen models blended with the size prior at weight 0.75"),
        MethodResult("matrix-factorisation", {}, 0.0, "not defined on a cold-start split"),
    ])
    print_report(report)
    out = capsys.readouterr().out
    assert "  modellens: never-seen models blended with the size prior at weight 0.75" in out
    assert "matrix-factorisation    not defined on a cold-start split" in out


def test_evaluation_breaks_each_method_down_by_task_type(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli.recommend_cmds import print_by_task
    from recommender.evaluation import EvaluationReport, MethodResult, evaluate_by_task
    from recommender.metrics import weighted_kendall_tau
    from recommender.space import GroupSet

    rng = np.random.default_rng(0)
    tasks = ["Retrieval", "STS", "Retrieval", "Clustering", "Retrieval", "STS"]
    z = [rng.normal(size=n) for n in (6, 5, 8, 4, 7, 3)]
    groups = GroupSet([(f"d{g}", t, "m") for g, t in enumerate(tasks)], [f"d{g}" for g in range(6)],
                      np.arange(1, 7), np.zeros(6, np.int64), np.zeros(6, np.int64),
                      [np.arange(len(v)) for v in z], z, z)
    scores = [v + rng.normal(scale=1.0, size=len(v)) for v in z]
    overall, by_task = evaluate_by_task(groups, scores)
    assert list(by_task) == ["Retrieval", "STS", "Clustering"]  # most groups first
    assert [by_task[t]["groups"] for t in by_task] == [3, 2, 1]
    taus = [weighted_kendall_tau(t, s) for t, s in zip(z, scores, strict=True)]
    assert by_task["STS"]["tau_w"] == pytest.approx(np.mean([taus[1], taus[5]]))
    weighted = sum(v["groups"] * v["tau_w"] for v in by_task.values()) / len(tasks)
    assert weighted == pytest.approx(overall["tau_w"]) and "ndcg@10" in by_task["Retrieval"]

    report = EvaluationReport("new-dataset", 0, 10, 6, [
        MethodResult("modellens", overall, 1.0, "", by_task),
        MethodResult("matrix-factorisation", {}, 0.0, "not defined on a cold-start split"),
        MethodResult("type-aware-mean-z", overall, 0.1, "", {t: {**v, "tau_w": float("nan")} for t, v in by_task.items()}),
    ])
    assert report.as_json()["methods"][0]["by_task"]["Clustering"]["groups"] == 1
    print_by_task(report)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "τw by task type, split new-dataset (seed 0)"
    assert lines[1].split() == ["task", "type", "groups", "modellens", "type-aware"]
    assert lines[2].split() == ["Retrieval", "3", f"{by_task['Retrieval']['tau_w']:.3f}", "n/a"]


def test_train_config_refuses_values_training_cannot_use() -> None:
    from recommender.train_config import TrainConfig

    for bad in ({"epochs": 0}, {"seed": -1}, {"lr": 0.0}, {"batch_groups": 0}):
        with pytest.raises(UsageError):
            TrainConfig(**bad)
    assert TrainConfig(epochs=1, seed=0).epochs == 1
