"""`lensroute show model|dataset`: one model's or dataset's metadata and results, from a real catalogue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.errors import NotFoundError, UsageError
from recommender.store.lookup import dataset_info, model_info

REPO = Path(__file__).resolve().parents[1]


def show(*args: str, db: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", "--db", db, "show", *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ), cwd=REPO)


def test_a_model_under_any_spelling_with_its_metadata_and_results(fixture_store) -> None:  # type: ignore[no-untyped-def]
    info = model_info(fixture_store, "wizardlm/wizardcoder-15b-v1.0@main")  # case and revision folded
    assert info.name == "WizardLM/WizardCoder-15B-V1.0"
    assert info.records and sum(info.sources.values()) == len(info.records)
    assert {"humaneval", "humaneval+"} <= {r["dataset"] for r in info.records}
    assert all({"dataset", "metric", "value", "source", "source_ref"} <= set(r) for r in info.records)
    assert [r["dataset"] for r in info.records] == sorted(r["dataset"] for r in info.records)

    with pytest.raises(NotFoundError, match=r"model 'WizardCoder 15B' is not in the catalogue; did you mean .*"
                                            r"'WizardLM/WizardCoder-15B-V1.0'"):
        model_info(fixture_store, "WizardCoder 15B")

    done = show("model", "WizardLM/WizardCoder-15B-V1.0", "--json", db=fixture_store.url)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert set(payload) == {"model", "aliases", "sources", "records"} and payload["model"]["n_parameters"] == 15e9
    assert len(payload["records"]) == len(info.records)
    text = show("model", "WizardLM/WizardCoder-15B-V1.0", "--limit", "1", db=fixture_store.url)
    assert text.returncode == 0 and f"{len(info.records)} records" in text.stdout
    assert f"… {len(info.records) - 1} more" in text.stdout
    missing = show("model", "no-such-model-anywhere", db=fixture_store.url)
    assert missing.returncode == 3 and "not in the catalogue" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr
    # A blank name used to resolve, as an empty bare name, to a stored model named like 'org/'.
    with fixture_store.writing() as conn:
        conn.exec_driver_sql("INSERT INTO models (name, updated_at) VALUES ('my_model/', '2026-01-01')")
    with pytest.raises(UsageError, match="name the model to show"):
        model_info(fixture_store, " ")
    blank = show("model", "", db=fixture_store.url)
    assert blank.returncode == 2 and blank.stderr.strip() == "lensroute: error: name the model to show"


def test_a_dataset_lists_its_models_best_first_whatever_the_direction(fixture_store) -> None:  # type: ignore[no-untyped-def]
    info = dataset_info(fixture_store, "AIDER-POLYGLOT")  # case folded
    assert info.name == "aider-polyglot"
    for metric in ("total_cost", "pass_rate_2"):
        rows = [r for r in info.records if r["metric"] == metric and not r["subset"] and not r["split"]]
        values = [r["value"] for r in rows]
        lower_is_better = rows[0]["higher_is_better"] is False
        assert lower_is_better == (metric == "total_cost")
        assert values == sorted(values, reverse=not lower_is_better) and len(values) > 2

    only = dataset_info(fixture_store, "aider-polyglot", metric="total_cost")
    assert {r["metric"] for r in only.records} == {"total_cost"}
    assert dataset_info(fixture_store, "aider-polyglot", metric="Total Cost").records == only.records  # spelt loosely
    with pytest.raises(UsageError, match="name the dataset to show"):
        dataset_info(fixture_store, "")
    with pytest.raises(NotFoundError, match=r"no results under metric 'bleu'; it has: .*total_cost"):
        dataset_info(fixture_store, "aider-polyglot", metric="bleu")

    done = show("dataset", "aider-polyglot", "--metric", "total_cost", "--limit", "2", db=fixture_store.url)
    assert done.returncode == 0, done.stderr
    assert "total_cost (lower is better):" in done.stdout and "   1. " in done.stdout and "   3. " not in done.stdout
    assert show("dataset", "aider-polyglot", "--json", db=fixture_store.url).returncode == 0
    usage = show(db=fixture_store.url)
    assert usage.returncode == 2 and "show what?" in usage.stderr


def test_lookups_run_on_both_engines(store) -> None:  # type: ignore[no-untyped-def]
    from recommender.ingest import import_paths

    assert not import_paths(store, [REPO / "tests" / "fixtures" / "raw" / "aider"]).failed
    board = dataset_info(store, "aider-polyglot", metric="pass_rate_2")
    best = board.records[0]
    assert best["value"] == max(r["value"] for r in board.records if not r["subset"] and not r["split"])
    found = model_info(store, best["model"].upper())
    assert found.name == best["model"] and any(r["dataset"] == "aider-polyglot" for r in found.records)
    with pytest.raises(NotFoundError, match="is not in the catalogue"):
        model_info(store, "no-such-model")
