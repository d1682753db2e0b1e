"""Ranking filters: a size budget, acceptable licences, open weights (`recommender.model_filters`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recommender.errors import NoDataError, UsageError
from recommender.model_filters import ModelFilter, normalise_licence, parse_licences, parse_size

REPO = Path(__file__).resolve().parents[1]
CODE = "Write Python functions from docstrings that pass unit tests"


def test_sizes_and_licences_read_as_people_write_them() -> None:
    assert [parse_size(t) for t in ("350M", "7B", "1.5b", " 500k ", "2e9", "120000")] == [3.5e8, 7e9, 1.5e9, 5e5, 2e9, 1.2e5]
    for bad in ("", "0", "-1B", "7X", "nan", "inf", "seven"):
        with pytest.raises(UsageError, match=r"--max-params .*350M, 7B or 1\.5e9"):
            parse_size(bad)
    with pytest.raises(UsageError, match=r"^Max size 'x'"):
        parse_size("x", "Max size")
    assert parse_licences(["Apache-2,MIT", "mit", " apache 2.0 "]) == ("apache-2.0", "mit")
    assert [normalise_licence(v) for v in (None, "Not specified", "unknown", "", "CC-BY-NC-4.0")] == [None] * 4 + ["cc-by-nc-4.0"]
    with pytest.raises(UsageError, match="--licence: name at least one"):
        parse_licences([" , "])


def test_a_filter_drops_what_it_knows_breaks_and_keeps_unknowns_unless_required() -> None:
    sizes = np.array([1e8, 9e9, np.nan, 5e8])
    licences = ["mit", "llama2", None, "apache-2.0"]
    openness = np.array([1, 1, -1, 0], np.int8)
    assert not ModelFilter().active and ModelFilter().keep(sizes, licences, openness).keep.all()

    small = ModelFilter(max_parameters=1e9).keep(sizes, licences, openness)
    assert small.keep.tolist() == [True, False, True, True]
    assert small.dropped == {"too large": 1} and small.kept_unknown == {"of unknown size": 1}
    strict = ModelFilter(max_parameters=1e9, require_known=True).keep(sizes, licences, openness)
    assert strict.keep.tolist() == [True, False, False, True] and strict.dropped == {"too large": 1, "of unknown size": 1}

    both = ModelFilter(licences=("mit", "apache-2.0"), open_weights=True)
    outcome = both.keep(sizes, licences, openness)
    assert outcome.keep.tolist() == [True, False, True, False]
    assert outcome.dropped == {"another licence": 1, "API only": 1}
    notes = outcome.notes(both)
    assert notes[0] == "filters (licence mit or apache-2.0; open weights): dropped 2 candidate(s) (1 another licence, 1 API only)"
    assert any(n.startswith("kept 1 candidate(s) with no recorded licence") for n in notes)


@pytest.fixture
def filtered_ranker(fixture_store, encoder: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A ranker trained after model metadata (`meta/models.jsonl` shape) recorded licences and
    openness for a few of the fixture catalogue's models."""
    from recommender.ingest import import_paths
    from recommender.pipeline import train_ranker
    from recommender.training import TrainConfig

    meta = tmp_path / "models.jsonl"
    rows = [{"model": "WizardLM/WizardCoder-15B-V1.0", "license": "bigcode-openrail-m", "open_weights": True},
            {"model": "Qwen/Qwen2.5-7B-Instruct", "license": "Apache-2", "open_weights": True},
            {"model": "gpt-4o", "license": None, "open_weights": False},
            {"model": "claude-3-5-sonnet-20241022", "license": "not specified", "open_weights": False}]
    meta.write_text("".join(json.dumps({**r, "sources": ["every_eval_ever"]}) + "\n" for r in rows), encoding="utf-8")
    assert not import_paths(fixture_store, [meta]).failed
    out = tmp_path / "ranker"
    train_ranker(fixture_store, TrainConfig(epochs=2, patience=1), out)
    return out


def test_ranking_keeps_only_the_models_the_user_can_take(filtered_ranker: Path, encoder: Path, tmp_path: Path) -> None:
    from recommender.ranker import Candidate, Ranker

    ranker = Ranker.load(filtered_ranker, device="cpu")
    query = dict(task="code-generation", metric="pass@1", top_k=0, all_models=True)
    every = {r.model: r for r in ranker.rank(CODE, **query).results}
    assert every["gpt-4o"].open_weights is False and every["Qwen/Qwen2.5-7B-Instruct"].licence == "apache-2.0"
    assert every["WizardLM/WizardCoder-15B-V1.0"].n_parameters == 15e9

    open_only = ranker.rank(CODE, **query, constraint=ModelFilter(open_weights=True))
    names = [r.model for r in open_only.results]
    assert "gpt-4o" not in names and "claude-3-5-sonnet-20241022" not in names
    assert "WizardLM/WizardCoder-15B-V1.0" in names and len(names) == len(every) - 2
    assert [r.rank for r in open_only.results] == list(range(1, len(names) + 1))  # ranks among the models kept
    assert any(n.startswith("filters (open weights): dropped 2 candidate(s) (2 API only)") for n in open_only.notes)

    apache = ranker.rank(CODE, **query, constraint=ModelFilter(licences=("apache-2.0",), require_known=True))
    assert [r.model for r in apache.results] == ["Qwen/Qwen2.5-7B-Instruct"]
    lenient = ranker.rank(CODE, **query, constraint=ModelFilter(licences=("apache-2.0",)))
    assert "WizardLM/WizardCoder-15B-V1.0" not in {r.model for r in lenient.results}  # another licence, recorded
    assert len(lenient.results) == len(every) - 1  # the unrecorded ones stay, and a note says how many
    assert any(n.startswith(f"kept {len(every) - 2:,} candidate(s) with no recorded licence") for n in lenient.notes)

    small = ranker.rank(CODE, **query, constraint=ModelFilter(max_parameters=7e9, require_known=True))
    assert small.results and all(r.n_parameters is not None and r.n_parameters <= 7e9 for r in small.results)
    assert any(r.n_parameters and r.n_parameters > 7e9 for r in every.values())
    payload = small.as_json()
    assert payload["query"]["filters"] == {"max_parameters": 7e9, "licences": [], "open_weights": False, "require_known": True}
    assert set(payload["results"][0]) >= {"n_parameters", "licence", "open_weights"}
    with pytest.raises(NoDataError, match=r"no candidate passes the filters \(at most 1k parameters\)"):
        ranker.rank(CODE, **query, constraint=ModelFilter(max_parameters=1e3, require_known=True))

    # a candidates file's own licence and openness win over the catalogue's (the user may know better)
    mine = [Candidate("gpt-4o", open_weights=True), Candidate("acme/new-coder-7b", licence="mit", open_weights=True),
            Candidate("acme/closed-coder", open_weights=False)]
    kept = ranker.rank(CODE, task="code-generation", metric="pass@1", top_k=0, candidates=mine,
                       constraint=ModelFilter(open_weights=True))
    assert sorted(r.model for r in kept.results) == ["acme/new-coder-7b", "gpt-4o"]
    assert {r.model: r.licence for r in kept.results}["acme/new-coder-7b"] == "mit"

    wizard = ranker.compact[ranker._match("WizardLM/WizardCoder-15B-V1.0")]
    ranker.n_parameters[wizard] = np.nan  # as if no size were recorded: the name says 15B, and the filter uses it
    kept = ranker.rank(CODE, **query, constraint=ModelFilter(max_parameters=16e9, require_known=True))
    assert {r.model: r.n_parameters for r in kept.results}["WizardLM/WizardCoder-15B-V1.0"] == 15e9

    # the benchmarks' 50,000-model copy keeps each replica's licence and openness
    from tests.bench.bench_ranker import scale_ranker

    scale_ranker(filtered_ranker, tmp_path / "scaled", 2_000)
    scaled = Ranker.load(tmp_path / "scaled", device="cpu")
    assert len(scaled.licence_of) == len(scaled.models) == 2_000 and len(scaled.openness) == 2_001
    top = scaled.rank(CODE, **{**query, "top_k": 50}, constraint=ModelFilter(open_weights=True))
    assert top.results and not any(r.model.startswith("gpt-4o#") for r in top.results)

    ranker.licence_of = None  # as a ranker exported before licences were kept: say so, never ignore the filter
    with pytest.raises(NoDataError, match="retrain it with `lensroute train`"):
        ranker.rank(CODE, **query, constraint=ModelFilter(licences=("mit",)))
    assert ranker.rank(CODE, **query, constraint=ModelFilter(max_parameters=7e9)).results  # sizes it has

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app", "rank", "--model", str(filtered_ranker), "--description", CODE,
                               "--task", "code-generation", *args], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "LENSROUTE_ENCODER_DIR": str(encoder)}, cwd=REPO)

    done = cli("--all-models", "--top-k", "0", "--license", "APACHE-2.0", "--require-known", "--json")
    assert done.returncode == 0, done.stderr
    assert [r["model"] for r in json.loads(done.stdout)["results"]] == ["Qwen/Qwen2.5-7B-Instruct"]
    text = cli("--open-weights", "--max-params", "20B", "--top-k", "3")
    assert text.returncode == 0 and "filters (at most 20B parameters; open weights)" in text.stdout
    assert "[15B · bigcode-openrail-m · open weights]" in cli("--all-models", "--top-k", "0").stdout
    for args, message in ((("--max-params", "lots"), "--max-params 'lots'"), (("--require-known",), "goes with a filter"),
                          (("--max-params", "1k", "--require-known"), "no candidate passes the filters")):
        bad = cli(*args)
        assert bad.returncode in (2, 4) and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
