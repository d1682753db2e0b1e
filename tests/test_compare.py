"""`lensroute compare`: named models head to head on datasets like the user's (`recommender.compare`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.errors import NotFoundError, UsageError

REPO = Path(__file__).resolve().parents[1]
CODE = "Write Python functions from docstrings that pass unit tests"
SHORTLIST = ["WizardLM/WizardCoder-15B-V1.0", "deepseek-ai/deepseek-coder-6.7b-instruct", "Qwen/Qwen2.5-Coder-32B-Instruct"]


def test_a_shortlist_head_to_head_with_the_datasets_where_they_met(fixture_store, ranker_dir: Path, encoder: Path) -> None:  # type: ignore[no-untyped-def]
    from recommender.compare import compare
    from recommender.ranker import Candidate, Ranker
    from recommender.store.lookup import model_info

    ranker = Ranker.load(ranker_dir, device="cpu")
    spelled = ["wizardlm/wizardcoder-15b-v1.0", *SHORTLIST[1:]]  # any spelling the catalogue resolves
    result = compare(ranker, CODE, spelled, task="code-generation", metric="pass@1", datasets_shown=4)

    ranking = ranker.rank(CODE, task="code-generation", metric="pass@1", top_k=0, candidates=[Candidate(m) for m in SHORTLIST])
    assert [m["model"] for m in result.models] == [r.model for r in ranking.results]  # the ranking's order and ranks
    assert [m["rank"] for m in result.models] == [1, 2, 3]
    untold = compare(ranker, CODE, SHORTLIST)  # no task given: scored as `rank` scores the same question
    assert [m["score"] for m in untold.models] == [round(r.score, 6) for r in ranker.rank(
        CODE, top_k=0, candidates=[Candidate(m) for m in SHORTLIST]).results]

    pairs = {(p["model"], p["versus"]): p for p in result.pairs}
    assert len(pairs) == 6
    for (a, b), pair in pairs.items():
        back = pairs[(b, a)]
        assert pair["meetings"] == back["meetings"] > 0 and pair["met_weight"] == back["met_weight"]
        assert abs(pair["win_rate"] + back["win_rate"] - 1.0) < 1e-3  # each meeting won by one side (a tie: half each)

    assert result.shared_groups >= len(result.datasets) and 0 < len(result.datasets) <= 4
    weights = [d["weight"] for d in result.datasets]
    assert weights == sorted(weights, reverse=True)
    first = result.datasets[0]
    assert sum(v is not None for v in first["values"].values()) >= 2
    # the values are the catalogue's own, as published
    for model, value in first["values"].items():
        if value is not None:
            stored = [r["value"] for r in model_info(fixture_store, model).records
                      if r["dataset"] == first["dataset"] and r["metric"] == first["metric"]]
            assert any(abs(value - v) < 1e-4 for v in stored), (model, value, stored)
    # each pair's share is its weighted meetings won (a tie half), recomputed here from every meeting listed
    every = compare(ranker, CODE, SHORTLIST, task="code-generation", metric="pass@1", datasets_shown=10_000)
    assert len(every.datasets) == every.shared_groups
    for pair in every.pairs:
        won = met = 0.0
        for d in every.datasets:
            a, b = d["values"][pair["model"]], d["values"][pair["versus"]]
            if a is None or b is None:
                continue
            better = a > b if d["higher_is_better"] else a < b
            won += d["weight"] * (1.0 if better else 0.5 if a == b else 0.0)
            met += d["weight"]
        assert abs(pair["win_rate"] - won / met) < 2e-3, (pair, won / met)
    # the pooled share: every weighted meeting a model had with the others, won or lost
    top = result.models[0]["model"]
    assert result.models[0]["win_rate"] is not None and 0.0 <= result.models[0]["win_rate"] <= 1.0
    assert json.loads(json.dumps(result.as_json()))["models"][0]["model"] == top

    with pytest.raises(UsageError, match="at least two models"):
        compare(ranker, CODE, SHORTLIST[:1], task="code-generation")
    with pytest.raises(UsageError, match="a second time"):
        compare(ranker, CODE, [SHORTLIST[0], SHORTLIST[0].upper()], task="code-generation")
    with pytest.raises(NotFoundError, match=r"^'acme/never-seen' has no results in the ranker's catalogue$"):
        compare(ranker, CODE, [SHORTLIST[0], "acme/never-seen"], task="code-generation")
    typo = SHORTLIST[1].split("/")[-1].replace("-", " ")  # the bare name, spaced: close names are offered
    with pytest.raises(NotFoundError, match=rf"has no results in the ranker's catalogue; did you mean '{SHORTLIST[1]}'"):
        compare(ranker, CODE, [SHORTLIST[0], typo], task="code-generation")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app", "compare", "--model", str(ranker_dir), *args], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "LENSROUTE_ENCODER_DIR": str(encoder)}, cwd=REPO)

    text = cli(*SHORTLIST, "--description", CODE, "--task", "code-generation", "--datasets", "2")
    assert text.returncode == 0, text.stderr
    assert "[1]" in text.stdout and "meetings (results groups both were measured in)" in text.stdout
    assert "where they met (the 2 of" in text.stdout and "*" in text.stdout
    payload = json.loads(cli(*SHORTLIST[:2], "--description", CODE, "--json").stdout)
    assert set(payload) >= {"query", "models", "pairs", "datasets", "shared_groups"} and len(payload["pairs"]) == 2
    for args in ((SHORTLIST[0], "--description", CODE), (*SHORTLIST[:2],)):
        bad = cli(*args)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
