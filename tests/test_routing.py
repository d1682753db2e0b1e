"""Query routing: score tables, routers, the cost–quality evaluation, and the route / pool commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recommender.errors import FormatError, NoDataError, NotFoundError, UsageError
from tests.conftest import FIXTURES, REPO

TABLES = FIXTURES / "routing"
MC_SET = REPO / "resources" / "calibration" / "general_mc.jsonl"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=REPO)


def hashed_embedding(texts: list[str], dim: int = 256) -> np.ndarray:
    """A fast deterministic bag-of-words embedding: enough signal for router logic tests."""
    import zlib

    out = np.zeros((len(texts), dim), np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.encode()) % dim] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


# --- score tables ---------------------------------------------------------------------------------


def test_real_table_keeps_its_own_split_and_says_how_costs_were_resolved() -> None:
    from routing.table import load_table

    table = load_table(TABLES / "llmrouter.parquet")
    assert len(table.models) == 9 and table.scores.shape == (len(table), 9)
    raw = pl.read_parquet(TABLES / "llmrouter.parquet")
    expected = dict(raw.group_by("query_id").agg(pl.col("split").first()).iter_rows())
    assert [table.split[i] for i in range(len(table))] == [expected[q] for q in table.query_ids]
    assert set(table.split.tolist()) == {"train", "test"} and not table.ood_benchmarks
    assert ((table.scores >= 0) & (table.scores <= 1)).all()
    # every cost is null in this table: the notes say what was done instead
    assert any("cost" in note for note in table.notes)
    assert table.cost_basis in {"uniform", "usd-estimated"}


def test_table_without_train_rows_gets_a_seeded_order_independent_split() -> None:
    from routing.table import load_table

    table = load_table(TABLES / "routellm.parquet", seed=3)
    # gsm8k is marked test in the table and nothing else is split: it becomes the OOD test benchmark
    assert table.ood_benchmarks == ["gsm8k"]
    assert (table.split[table.benchmarks == "gsm8k"] == "test").all()
    mmlu = table.split[table.benchmarks == "mmlu"]
    assert 0 < (mmlu == "test").sum() < len(mmlu)
    # prices: both models have a bundled price, so the cost is an estimate in USD, not uniform
    assert table.cost_basis == "usd-estimated"
    assert table.costs[:, table.models.index("gpt-4-1106-preview")].mean() > \
        table.costs[:, table.models.index("mistralai/Mixtral-8x7B-Instruct-v0.1")].mean()
    shuffled = pl.read_parquet(TABLES / "routellm.parquet").sample(fraction=1.0, shuffle=True, seed=1)
    again_path = Path(os.environ["LENSROUTE_HOME"]).parent / "shuffled.parquet"
    shuffled.write_parquet(again_path)
    again = load_table(again_path, seed=3)
    assert dict(zip(again.query_ids, again.split, strict=True)) == dict(zip(table.query_ids, table.split, strict=True))
    other_seed = load_table(TABLES / "routellm.parquet", seed=4)
    assert list(other_seed.split) != list(table.split)


def write_table(tmp_path: Path, rows: list[dict], name: str = "t.csv") -> Path:
    path = tmp_path / name
    pl.DataFrame(rows).write_csv(path)
    return path


def test_messy_table_is_cleaned_and_every_fix_is_reported(tmp_path: Path) -> None:
    from routing.table import load_table

    rows = []
    for q in range(30):
        for model in ("a", "b", "c"):
            if model == "c" and q % 3 == 0:
                continue  # a benchmark with a different model set: holes
            rows.append({"benchmark": "x" if q < 20 else "y", "prompt": f"question number {q}", "model": model,
                         "score": float((q + ord(model)) % 2), "split": "train" if q < 16 else ("test" if q < 20 else None),
                         "cost_usd": 0.01 if model == "a" else None})
    rows.append({"benchmark": "x", "prompt": "question number 1", "model": "a", "score": None, "split": "train", "cost_usd": None})
    rows.append({"benchmark": "x", "prompt": "question number 2", "model": "b", "score": float("nan"), "split": "train",
                 "cost_usd": None})
    rows.append({"benchmark": "x", "prompt": "question number 3", "model": "a", "score": 0.0, "split": "train", "cost_usd": 0.02})
    table = load_table(write_table(tmp_path, rows))
    notes = " | ".join(table.notes)
    assert "dropped 2 rows with a missing or NaN score" in notes
    assert "averaged 1 repeated" in notes
    assert "unscored" in notes and np.isnan(table.scores).sum() == 10
    assert table.ood_benchmarks == ["y"] and (table.split[table.benchmarks == "y"] == "test").all()
    assert "no price" in notes and table.cost_basis == "uniform"  # b and c have no cost and no price


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: {k: v for k, v in r.items() if k != "score"}, "missing column"),
    (lambda r: {**r, "score": 7.0}, "outside 0..1"),
    (lambda r: {**r, "split": "holdout"}, "unknown split"),
    (lambda r: {**r, "score": None}, "no scored rows"),
])
def test_bad_tables_are_refused_with_the_reason(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    from routing.table import load_table

    rows = [change({"benchmark": "b", "prompt": f"p{i}", "model": "m", "score": 1.0, "split": "train"}) for i in range(4)]
    with pytest.raises((FormatError, NoDataError), match=message):
        load_table(write_table(tmp_path, rows))
    with pytest.raises(NotFoundError):
        load_table(tmp_path / "missing.parquet")


def test_question_files_from_windows_tools_read_as_without_the_mark(tmp_path: Path) -> None:
    """A questions file saved with a UTF-8 byte-order mark reads like one without (its first line
    used to be 'not JSON'); a broken line is still named."""
    from routing.answering import read_questions

    lines = MC_SET.read_text().splitlines()[:3]
    plain, marked = tmp_path / "plain.jsonl", tmp_path / "marked.jsonl"
    plain.write_text("\n".join(lines) + "\n")
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert read_questions(marked, labelled=True) == read_questions(plain, labelled=True)
    marked.write_bytes(b"\xef\xbb\xbf" + (lines[0] + "\n{broken\n").encode())
    with pytest.raises(FormatError, match=r"marked\.jsonl:2: not JSON"):
        read_questions(marked, labelled=True)


def test_answer_options_must_be_distinct_and_non_empty(tmp_path: Path) -> None:
    """A repeated or empty option makes the scored options ambiguous (the CLI and the GUI used to
    take `--choices 3 4 4` or an empty '' option as given)."""
    from routing.answering import choices_problem, read_questions

    assert choices_problem([]) is None and choices_problem(["a", "b"]) is None
    assert "at least two choices" in (choices_problem(["a"]) or "")
    assert choices_problem(["a", " "]) == "a choice is empty"
    assert choices_problem(["Paris", "Rome", "Paris "]) == "the choice 'Paris' is given twice"
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "Q?", "choices": ["a", "a"], "answer": "a"}) + "\n")
    with pytest.raises(FormatError, match=r"q\.jsonl:1: the choice 'a' is given twice"):
        read_questions(questions, labelled=True)
    for choices, said in ((["3", "4", "4"], "the choice '4' is given twice"), (["", "4"], "a choice is empty")):
        done = run_cli("route", "answer", "What is 2+2?", "--choices", *choices, env={"LENSROUTE_HOME": str(tmp_path)})
        assert done.returncode == 2 and done.stderr.strip() == f"lensroute: error: --choices: {said}", done.stderr


# --- routers --------------------------------------------------------------------------------------


def clustered_problem(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three query topics; each model is good on one topic: the best single model gets ~1/3+."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 16))
    topic = rng.integers(0, 3, n)
    x = centres[topic] + 0.3 * rng.normal(size=(n, 16))
    p = np.full((n, 3), 0.2)
    p[np.arange(n), topic] = 0.9
    p[:, 0] += 0.1  # model 0 is slightly better overall: the best single
    scores = (rng.random((n, 3)) < p).astype(float)
    return x.astype(np.float32), scores


@pytest.mark.parametrize("kind", ["knn", "mlp", "lgbm", "cluster"])
def test_every_router_beats_the_best_single_model_and_round_trips_its_state(kind: str) -> None:
    from routing.router_store import load_router, save_router
    from routing.routers import BestSingle, CostModel, decide, make_router

    x, scores = clustered_problem()
    train, test = slice(0, 450), slice(450, None)
    router = make_router(kind).fit(x[train], scores[train], seed=0)
    zero = np.zeros((150, 3))
    routed = scores[test][np.arange(150), decide(router.predict(x[test]), zero, None, 0.0)].mean()
    single = scores[test][np.arange(150), decide(BestSingle().fit(x[train], scores[train]).predict(x[test]), zero, None, 0.0)].mean()
    assert routed > single + 0.15, (routed, single)
    save_router("t", router, CostModel().fit(np.ones(450), np.ones((450, 3))), {"pool": ["a", "b", "c"]})
    loaded = load_router("t")
    assert np.allclose(loaded.router.predict(x[test]), router.predict(x[test]), atol=1e-5)
    assert loaded.pool == ["a", "b", "c"] and loaded.meta["kind"] == kind


def test_routers_learn_from_tables_with_holes() -> None:
    from routing.routers import make_router

    x, scores = clustered_problem(300)
    scores[::2, 2] = np.nan  # model 2 scored on half the queries only
    for kind in ("knn", "mlp", "lgbm", "cluster"):
        predicted = make_router(kind).fit(x, scores, seed=0).predict(x[:10])
        assert predicted.shape == (10, 3) and np.isfinite(predicted).all(), kind


def test_decision_trades_quality_against_cost_and_respects_availability() -> None:
    from routing.routers import decide

    quality = np.array([[0.9, 0.6, 0.5]])
    cost = np.array([[10.0, 1.0, 0.1]])
    assert decide(quality, cost, None, 0.0)[0] == 0
    assert decide(quality, cost, None, 0.1)[0] == 1  # 0.9 − 1.0 < 0.6 − 0.1
    assert decide(quality, cost, None, 100.0)[0] == 2
    assert decide(quality, cost, np.array([[False, True, True]]), 0.0)[0] == 1


def test_saved_router_that_is_missing_or_corrupt_says_what_to_do() -> None:
    from routing.router_store import load_router, routers_dir

    with pytest.raises(NotFoundError, match="route calibrate"):
        load_router("nothing")
    folder = routers_dir() / "broken"
    folder.mkdir(parents=True)
    (folder / "router.json").write_text('{"kind": "knn", "pool": ["a"]}')
    (folder / "router.npz").write_bytes(b"not an npz")
    with pytest.raises(FormatError, match="calibrate it again"):
        load_router("broken")


def test_a_router_whose_pool_member_was_removed_says_which_and_how_to_mend_it() -> None:
    from app import doctor
    from routing.router_store import load_router, save_router, saved_names
    from routing.routers import CostModel, make_router
    from routing.serve import RoutingSession

    x, scores = clustered_problem(60)
    save_router("team", make_router("knn").fit(x, scores), CostModel().fit(np.ones(60), np.ones((60, 3))),
                {"pool": ["gone-model", "b", "c"]})
    assert saved_names() == ["team"]
    with pytest.raises(NotFoundError, match=r"router 'team' routes over 'gone-model', which is no longer installed.*"
                                            r"`lensroute route calibrate --name team`"):
        RoutingSession(load_router("team"), encoder=object())
    check = doctor.routers()
    assert not check.ok and not check.needed and check.detail == "router 'team': not installed: gone-model, b, c"
    assert check.fix == "lensroute route calibrate --name team"


# --- evaluation -----------------------------------------------------------------------------------


def test_frontier_area_is_normalised_between_cheapest_and_dearest() -> None:
    from routing.evaluate import frontier_auc

    assert frontier_auc([(0.0, 1.0)], 0.0, 1.0) == pytest.approx(1.0)
    assert frontier_auc([(0.0, 0.2), (1.0, 0.8)], 0.0, 1.0) == pytest.approx(0.2)
    assert frontier_auc([(0.0, 0.2), (0.5, 0.8)], 0.0, 1.0) == pytest.approx(0.5)


def test_evaluation_rows_per_benchmark_and_overall_with_the_oracle_on_top() -> None:
    from routing.evaluate import evaluate_table, order_rows
    from routing.table import load_table

    table = load_table(TABLES / "llmrouter.parquet")
    rows = order_rows(evaluate_table(table, hashed_embedding, ["knn", "cluster"], seed=0))
    benchmarks = {r.benchmark for r in rows}
    assert benchmarks == {"all"} | set(table.benchmarks[table.split == "test"].tolist())
    overall = {r.router: r for r in rows if r.benchmark == "all"}
    assert set(overall) == {"knn", "cluster", "best-single", "random", "oracle"}
    assert overall["oracle"].accuracy >= max(r.accuracy for r in overall.values())
    assert overall["best-single"].gap_closed == pytest.approx(0.0) and overall["oracle"].gap_closed == pytest.approx(1.0)
    assert overall["knn"].queries == int((table.split == "test").sum())
    for row in rows:
        assert set(row.as_json()) >= {"benchmark", "router", "accuracy", "cost", "auc", "gap_closed"}
        assert 0.0 <= row.accuracy <= 1.0 and 0.0 <= row.auc <= 1.0 + 1e-9
    again = order_rows(evaluate_table(table, hashed_embedding, ["knn", "cluster"], seed=0))
    assert [r.as_json() for r in again] == [r.as_json() for r in rows]  # seeded: reproducible


def test_evaluation_needs_train_scores_for_every_model(tmp_path: Path) -> None:
    from routing.evaluate import evaluate_table
    from routing.table import load_table

    rows = [{"benchmark": "b", "prompt": f"p{i}", "model": m, "score": 1.0, "split": "train" if i < 8 else "test"}
            for i in range(10) for m in ("a", "b") if not (m == "b" and i < 8)]
    with pytest.raises(NoDataError, match="no training scores"):
        evaluate_table(load_table(write_table(tmp_path, rows)), hashed_embedding)


@pytest.mark.builtin_models
def test_route_evaluate_cli_json_contract_and_bad_input(encoder: Path, tmp_path: Path) -> None:
    env = {"LENSROUTE_ENCODER_DIR": str(encoder)}
    done = run_cli("route", "evaluate", str(TABLES / "routellm.parquet"), "--router", "knn", "--json", env=env)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {r["router"] for r in rows} == {"knn", "best-single", "random", "oracle"}
    assert {"all", "gsm8k", "mmlu"} <= {r["benchmark"] for r in rows}
    for row in rows:
        assert set(row) >= {"benchmark", "router", "accuracy", "cost", "auc", "gap_closed"}
    assert "evaluated out of distribution" in done.stderr and "Traceback" not in done.stderr
    bad = write_table(tmp_path, [{"benchmark": "b", "prompt": "p", "model": "m", "score": 3.0}])
    refused = run_cli("route", "evaluate", str(bad), env=env)
    assert refused.returncode == 2 and "outside 0..1" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    missing = run_cli("route", "evaluate", str(tmp_path / "nope.parquet"), env=env)
    assert missing.returncode == 3 and "Traceback" not in missing.stderr


# --- calibrate, answer, batch on local models -----------------------------------------------------


def small_mc_set(tmp_path: Path, n: int = 20) -> Path:
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(line + "\n" for line in MC_SET.read_text().splitlines()[:n]))
    return path


@pytest.mark.builtin_models
def test_calibrate_answer_and_batch_route_over_the_local_pool(local_pool: list[str], tmp_path: Path) -> None:
    from routing.answering import read_questions
    from routing.calibrate import calibrate
    from routing.router_store import load_router
    from routing.serve import RoutingSession

    questions = read_questions(small_mc_set(tmp_path), labelled=True)
    steps: list[tuple[float, float | None]] = []
    summary = calibrate(local_pool, questions, kind="knn", device="cpu", progress=lambda d, t=None, m="": steps.append((d, t)))
    assert summary["pool"] == local_pool and summary["questions"] == 20
    assert set(summary["accuracy"]) == set(local_pool) and all(v > 0 for v in summary["latency_ms"].values())
    assert summary["cross_validated"]["folds"] == 5
    assert steps[-1][0] == steps[-1][1]  # progress reached its end
    saved = load_router()
    session = RoutingSession(saved, device="cpu")
    question = questions[0]
    decision, answer = session.answer(question)
    result = session.as_json(question, decision, answer)
    assert result["chosen"]["model"] in local_pool and result["chosen"]["answer"] in question.choices
    assert [m["model"] for m in result["pool"]] == local_pool
    assert all({"predicted_score", "predicted_cost", "eligible"} <= set(m) for m in result["pool"])
    # a large cost weight sends the query to the model predicted cheapest
    cheap = RoutingSession(saved, cost_weight=1e6, device="cpu", encoder=session.encoder).decide(question)
    assert cheap.chosen == int(np.argmin(cheap.cost))
    # a free-text question can only go to the causal LM
    free = session.decide(type(question)("Tell me about Paris.", []))
    assert local_pool[free.chosen] == "tiny-llama" and not free.eligible[local_pool.index("all-minilm-l6-v2")]
    # a query longer than the encoder reads is routed on its beginning, and the output says so
    long = session.decide(type(question)(" ".join(["word"] * 400), ["a", "b"]))
    assert any("longer than the encoder" in note for note in long.notes)


@pytest.mark.builtin_models
def test_route_commands_from_the_cli(local_pool: list[str], tmp_path: Path) -> None:
    from routing.answering import bundled_questions

    data = small_mc_set(tmp_path, 12)
    done = run_cli("route", "calibrate", "--pool", ",".join(local_pool), "--data", str(data), "--device", "cpu", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["pool"] == local_pool
    answered = run_cli("route", "answer", "What is the capital of France?", "--choices", "Berlin", "Paris", "Rome",
                       "--device", "cpu", "--json")
    assert answered.returncode == 0, answered.stderr
    result = json.loads(answered.stdout)
    assert result["chosen"]["model"] in local_pool and result["chosen"]["answer"] in {"Berlin", "Paris", "Rome"}
    assert len(result["pool"]) == 2 and result["routing_ms"] > 0
    text = run_cli("route", "answer", "What is the capital of France?", "--choices", "Berlin", "Paris", "--device", "cpu")
    assert text.returncode == 0 and "predicted score" in text.stdout
    batch = run_cli("route", "batch", str(data), "--device", "cpu", "--json")
    assert batch.returncode == 0, batch.stderr
    results = json.loads(batch.stdout)
    assert len(results) == 12 and all("correct" in r for r in results)
    assert "accuracy" in batch.stderr and "12/12 questions routed" in batch.stderr
    # with neither --pool nor --data: every installed model on the bundled questions, and it says so
    bundled = run_cli("route", "calibrate", "--name", "first", "--device", "cpu", "--json")
    assert bundled.returncode == 0, bundled.stderr
    summary = json.loads(bundled.stdout)
    assert summary["pool"] == sorted(local_pool) and summary["questions"] == 64
    assert summary["data"] == str(bundled_questions())
    assert "every installed model" in bundled.stderr and "64 bundled" in bundled.stderr
    listed = run_cli("route", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"default", "first"} and all(row["usable"] for row in rows.values())
    assert rows["first"]["questions"] == 64 and rows["first"]["pool"] == sorted(local_pool)
    assert rows["default"]["cross_validated"]["folds"] == 5 and rows["first"]["calibrated_at"]
    unknown = run_cli("route", "answer", "Q?", "--choices", "a", "b", "--router", "typo")
    assert unknown.returncode == 3 and "(saved here: default, first)" in unknown.stderr


@pytest.mark.builtin_models
def test_route_bad_input_is_one_line_and_non_zero(local_pool: list[str], tmp_path: Path) -> None:
    data = small_mc_set(tmp_path, 12)
    cases = [
        (("route", "answer", "Hello?"), 3, "run `lensroute route calibrate` first"),  # nothing calibrated yet
        (("route", "answer", "Hello?", "--router", "mine"), 3, "`lensroute route calibrate --name mine`"),
        (("route", "calibrate", "--pool", " , ", "--data", str(data)), 2, "pool is empty"),
        (("route", "calibrate", "--pool", "tiny-llama,gpt-17", "--data", str(data)), 3, "gpt-17"),
        (("route", "calibrate", "--pool", "tiny-llama", "--data", str(tmp_path / "none.jsonl")), 3, "no such file"),
        (("route", "evaluate", str(data)), 2, "missing column"),
    ]
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text(json.dumps({"question": "Q?", "choices": ["a", "b"]}) + "\n")
    cases.append((("route", "calibrate", "--pool", "tiny-llama", "--data", str(unlabelled)), 2, "answer"))
    for args, code, message in cases:
        done = run_cli(*args)
        assert done.returncode == code, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    embedding_only = run_cli("route", "calibrate", "--pool", "all-minilm-l6-v2", "--data", str(data), "--device", "cpu")
    assert embedding_only.returncode == 0, embedding_only.stderr
    assert "trained on" in embedding_only.stdout and "all-minilm-l6-v2" in embedding_only.stdout
    free = run_cli("route", "answer", "Tell me a story.")
    assert free.returncode == 2 and "--choices" in free.stderr
    # removing a pool member warns that the router needs it, and the router then says so itself
    removed = run_cli("models", "remove", "all-minilm-l6-v2")
    assert removed.returncode == 0 and "router 'default' routes over all-minilm-l6-v2" in removed.stderr
    orphaned = run_cli("route", "answer", "Hello?", "--choices", "a", "b")
    assert orphaned.returncode == 3 and "routes over 'all-minilm-l6-v2', which is no longer installed" in orphaned.stderr
    assert len(orphaned.stderr.strip().splitlines()) == 1, orphaned.stderr
    listed = run_cli("route", "list")
    assert "cannot answer: not installed: all-minilm-l6-v2" in listed.stdout


def test_calibration_checks_the_pool_before_running_anything() -> None:
    from routing.calibrate import check_pool

    with pytest.raises(UsageError, match="empty"):
        check_pool([])
    with pytest.raises(UsageError, match="twice"):
        check_pool(["a", "a"])
    with pytest.raises(NotFoundError, match="nope"):
        check_pool(["nope"])
    nothing_installed = run_cli("route", "calibrate")  # no --pool, and no local model to make one of
    assert nothing_installed.returncode == 3 and "`lensroute models build-builtin`" in nothing_installed.stderr
    assert len(nothing_installed.stderr.strip().splitlines()) == 1, nothing_installed.stderr


# --- pools from the recommender -------------------------------------------------------------------


@pytest.mark.builtin_models
@pytest.mark.slow
def test_pool_marks_recommended_models_that_run_here(local_pool: list[str], ranker_dir: Path) -> None:
    done = run_cli("pool", "--model", str(ranker_dir), "--description", "Graduate-level science multiple-choice questions",
                   "--top-k", "1000", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["recommended"] and all({"rank", "model", "score", "runnable"} <= set(r) for r in result["recommended"])
    runnable = [r for r in result["recommended"] if r["runnable"]]
    # the tiny Llama's manifest names a catalogue model: it is the recommended model that runs here
    assert [r["local_name"] for r in runnable] == ["tiny-llama"]
    assert result["runnable"] == ["tiny-llama"] and "HuggingFaceTB/SmolLM2-360M-Instruct" not in result["not_runnable"]
    assert sorted(p["local_name"] for p in result["pool"]) == sorted(local_pool)
    assert result["calibrate_command"] == "lensroute route calibrate --pool tiny-llama"  # the recommended one here
    answers = {p["local_name"]: p["answers"] for p in result["pool"]}
    assert answers == {"tiny-llama": "free text and multiple choice", "all-minilm-l6-v2": "multiple choice"}
    text = run_cli("pool", "--model", str(ranker_dir), "--description", "Graduate-level science multiple-choice questions",
                   "--top-k", "1000")
    assert "route over the recommended models that run here: lensroute route calibrate --pool tiny-llama" in text.stdout
    bad = run_cli("pool", "--model", str(ranker_dir), "--description", "x", "--top-k", "0")
    assert bad.returncode == 2 and "--top-k" in bad.stderr
    german = run_cli("pool", "--model", str(ranker_dir), "--description", "Science questions", "--language", "German",
                     "--json")
    assert german.returncode == 0 and json.loads(german.stdout)["query"]["languages"] == ["deu"]
    budget = run_cli("pool", "--model", str(ranker_dir), "--description", "Graduate-level science multiple-choice questions",
                     "--top-k", "1000", "--max-params", "1B", "--require-known", "--json")
    assert budget.returncode == 0, budget.stderr
    limited = json.loads(budget.stdout)
    assert limited["recommended"] and all(r["n_parameters"] <= 1e9 for r in limited["recommended"])
    assert limited["runnable"] == ["tiny-llama"]  # SmolLM2-360M fits the budget
    assert any(note.startswith("filters (at most 1B parameters): dropped") for note in limited["notes"])
    opened = run_cli("pool", "--model", str(ranker_dir), "--description", "Graduate-level science multiple-choice questions",
                     "--open-weights", "--require-known", "--json")
    assert opened.returncode == 0, opened.stderr  # installed models run here: their weights are open
    strict = json.loads(opened.stdout)
    assert sorted(p["local_name"] for p in strict["pool"]) == sorted(local_pool)
    # no catalogued model is recorded as open here: the recommendation is empty and says why, the pool stands
    assert strict["recommended"] == [] and strict["notes"][0].startswith("recommended: no candidate passes the filters")
    assert strict["query"]["filters"]["open_weights"] is True


def test_sizes_stated_in_model_names() -> None:
    from recommender.normalise import parameters_from_name

    assert parameters_from_name("qwen2.5-7b-instruct") == 7e9
    assert parameters_from_name("mistralai/Mixtral-8x7B-Instruct-v0.1") == 56e9
    assert parameters_from_name("HuggingFaceTB/SmolLM2-135M-Instruct") == 135e6
    assert parameters_from_name("gpt-4-1106-preview") is None and parameters_from_name("bge-m3") is None


@pytest.mark.slow
def test_pool_experiment_compares_recommended_random_and_all_pools(ranker_dir: Path, fixture_store) -> None:  # type: ignore[no-untyped-def]
    from recommender.ranker import Ranker
    from routing.pool_experiment import candidates_for, pool_experiment
    from routing.table import load_table

    table = load_table(TABLES / "llmrouter.parquet")
    candidates = candidates_for(table.models, fixture_store)
    assert {c.model: c.n_parameters for c in candidates}["qwen2.5-7b-instruct"] == 7e9
    x = hashed_embedding(table.prompts)
    ranker = Ranker.load(ranker_dir, device="cpu")
    rows = pool_experiment(table, x, ranker, 3, random_draws=3, store=fixture_store)
    tested = set(table.benchmarks[table.split == "test"].tolist())
    assert {(r.benchmark, r.pool) for r in rows} == {(b, p) for b in [*tested, "all"] for p in ("recommended", "random", "all")}
    for row in rows:
        assert 0.0 <= row.accuracy <= 1.0 and row.queries > 0
        if row.pool == "recommended" and row.benchmark != "all":
            assert len(row.models) == 3 and set(row.models) <= set(table.models)
    overall = {r.pool: r for r in rows if r.benchmark == "all"}
    assert overall["all"].queries == int((table.split == "test").sum())
    assert rows == pool_experiment(table, x, ranker, 3, random_draws=3, store=fixture_store)  # seeded
    with pytest.raises(UsageError):
        pool_experiment(table, x, ranker, 9)
