"""Importers on the real source files copied into tests/fixtures/raw.

The reference is the published extraction of the same files (`../shared/data/records`, the
matching rows copied into tests/fixtures/expected_records.parquet): importing a source's native
layout must reproduce it row for row.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from recommender import importers
from recommender.errors import FormatError, NotFoundError
from recommender.importers import eee, model_card, mteb, openllm
from recommender.importers.base import ImportContext
from recommender.ingest import import_paths
from recommender.records import Rejected
from recommender.store import Store
from recommender.store.export import export_records, records_frame
from tests.conftest import FIXTURES, RAW

COMPARED = ["source", "model", "model_revision", "dataset", "task", "metric", "subset", "split", "value",
            "evaluated_at", "higher_is_better"]


def expected_records() -> pl.DataFrame:
    return pl.read_parquet(FIXTURES / "expected_records.parquet")


def comparable(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows to compare: the store keeps the first spelling of a model whose names differ only
    in case (`Vicuna-13B` on EvalPlus, `vicuna-13b` on AlpacaEval), so compare case-folded."""
    return frame.select(COMPARED).with_columns(
        pl.col("value").round(9), pl.col("model").str.to_lowercase()
    ).sort(COMPARED, nulls_last=True)


def import_fixture(store: Store, *paths: Path) -> pl.DataFrame:
    report = import_paths(store, list(paths))
    assert not report.failed, [u.error for u in report.failed]
    return records_frame(store)


def test_native_layouts_reproduce_the_published_extraction(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    ours = import_fixture(store, RAW)
    expected = expected_records()
    assert ours.height == expected.height
    diff = comparable(ours).join(comparable(expected), on=COMPARED, how="anti", nulls_equal=True)
    assert diff.is_empty(), diff


@pytest.mark.parametrize(
    ("relative", "format_name"),
    [
        ("mteb/results", "mteb-results"),
        ("mteb/results/cl-nagoya__ruri-base/1ae40b8b6c78518a499425086bab8fc16c2e4b0e/JSICK.json", "mteb-result-json"),
        ("every_eval_ever", "eee-tree"),
        ("every_eval_ever/data/hal-gaia/anthropic/claude-3-7-sonnet-20250219/101c697f-6b90-41dc-8d00-30481e0ab429.json", "eee-json"),
        ("aider/aider/website/_data/refactor_leaderboard.yml", "aider-yaml"),
        ("evalplus/results.json", "evalplus-json"),
        ("evalplus/results/evalperf/COMBINED-RESULTS.json", "evalperf-json"),
        ("amlb/reports/old/tables/8h/all_results.csv", "amlb-csv"),
        ("alpaca_eval/alpaca_eval/leaderboards/data_AlpacaEval_2/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv", "alpaca-eval-csv"),
    ],
)
def test_formats_are_detected(relative: str, format_name: str) -> None:
    path = RAW / relative
    if not path.exists():  # a fixture file picked out of a copied folder
        pytest.skip(f"fixture {relative} not copied")
    fmt = importers.detect(path)
    assert fmt is not None and fmt.name == format_name


def test_unknown_files_are_not_claimed_by_any_format() -> None:
    assert importers.detect(RAW / "mteb" / "LICENSE") is None
    assert importers.detect(RAW / "manifest.jsonl") is None


def test_mteb_legacy_nan_and_unusable_files() -> None:
    context = ImportContext(mteb_tasks={
        "STS16": {"type": "STS", "main_score": "cosine_spearman", "eval_splits": ["test"]},
        "CMedQAv2-reranking": {"type": "Reranking", "main_score": "map_at_1000", "eval_splits": ["test"]},
    })
    legacy = RAW / "mteb/results/google__text-embedding-005/external/STS16.json"
    row, reason = mteb.parse_task_file(legacy, "google/text-embedding-005", "external", context)
    assert reason is None and row is not None
    assert (row["metric"], row["split"], round(row["value"], 6)) == ("cosine_spearman", "test", 0.873566)
    # renamed task without the main score mteb now uses: like mteb, no row
    unusable = RAW / "mteb/results/moka-ai__m3e-base/no_revision_available/CMedQAv2.json"
    row, reason = mteb.parse_task_file(unusable, "moka-ai/m3e-base", "no_revision_available", context)
    assert row is None and "main score" in reason


def test_mteb_bare_nan_in_secondary_metrics_is_tolerated() -> None:
    path = RAW / "mteb/results/cl-nagoya__ruri-base/1ae40b8b6c78518a499425086bab8fc16c2e4b0e/JaCWIRReranking.json"
    assert "NaN" in path.read_text()
    row, reason = mteb.parse_task_file(path, "cl-nagoya/ruri-base", "x", ImportContext())
    assert reason is None and row is not None and 0 <= row["value"] <= 1


def test_eee_deduplicates_rescrapes_and_drops_ambiguous_truncated_ids() -> None:
    parsed = next(iter(eee._parse_tree(RAW / "every_eval_ever/data/reward-bench", ImportContext())))[1]
    assert not parsed.records.filter(pl.col("model").str.contains("nectar")).height
    assert parsed.rejected.reasons["ambiguous: files share a key and a timestamp but disagree"] == 12
    lcb = next(iter(eee._parse_tree(RAW / "every_eval_ever/data/livecodebenchpro", ImportContext())))[1]
    assert lcb.records.height == 3 and lcb.rejected.reasons == {"superseded by a later scrape of the same key": 3}
    assert sorted(lcb.records["value"].to_list()) == [0.0423, 0.4085, 0.9014]  # the later scrape's values


def test_eee_drops_helm_not_evaluated_markers() -> None:
    rejected = Rejected()
    files = sorted((RAW / "every_eval_ever/data/helm_classic").rglob("*.json"))
    rows, _ = eee.parse_eee_file(files[0], ImportContext(), rejected)
    assert all(r["value"] != -1.0 for r in rows)
    assert rejected.reasons.get("HELM -1 'not evaluated' marker", 0) == 5


def test_model_card_model_index_with_lower_is_better_metric(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    card = FIXTURES / "model_cards/nvidia__stt_ar_fastconformer_hybrid_large_pcd_v1.0/README.md"
    frame = import_fixture(store, card)
    assert set(frame["model"]) == {"nvidia/stt_ar_fastconformer_hybrid_large_pcd_v1.0"}
    assert sorted(frame["value"].to_list()) == [6.55, 12.94, 16.67, 25.6]
    assert set(frame["higher_is_better"].to_list()) == {False}  # wer, from the direction table
    assert set(frame["dataset"]) == {"MASC", "MCV17", "FLEURS", "Tarteel AI's EveryAyah Dataset"}


def test_model_card_open_llm_leaderboard_results() -> None:
    card = FIXTURES / "model_cards/ajibawa-2023__Code-13B/README.md"
    parsed = model_card._parse(card, ImportContext())
    frame = parsed.records
    assert frame.height == 6 and set(frame["model"]) == {"ajibawa-2023/Code-13B"}
    mmlu = frame.filter(pl.col("dataset") == "MMLU (5-Shot)")
    assert (mmlu["metric"].item(), mmlu["value"].item(), mmlu["split"].item()) == ("acc", 53.17, "test")
    assert parsed.models[0]["licence"] == "cc-by-nc-nd-4.0"


@pytest.mark.parametrize(("raw", "value"), [("20.0 ± 1.2", 20.0), ("45.3%", 45.3), (" 0.91 +/- 0.02", 0.91),
                                            (81, 81.0), ("n/a", None), (float("nan"), None), (True, None)])
def test_model_card_value_strings(raw: object, value: float | None) -> None:
    assert model_card.parse_value(raw) == value


def test_model_card_with_broken_front_matter_is_a_format_error(tmp_path: Path) -> None:
    bad = tmp_path / "org__m" / "README.md"
    bad.parent.mkdir()
    bad.write_text("---\nmodel-index: [\n---\n")
    with pytest.raises(FormatError):
        model_card._parse(bad, ImportContext())


def open_llm_contents_from_eee(path: Path) -> Path:
    """The Open LLM Leaderboard `contents` table built from the real EEE hfopenllm_v2 files
    (the same leaderboard's numbers, in the endpoint's column layout)."""
    rows = []
    inverse = {v[0].split("/", 1)[1]: k for k, v in openllm.BENCHMARKS.items()}
    for file in sorted((RAW / "every_eval_ever/data/hfopenllm_v2").rglob("*.json")):
        data = json.loads(file.read_text())
        info = data["model_info"]
        row = {"eval_name": info["id"].replace("/", "_"), "fullname": info["id"],
               "Precision": info["additional_details"]["precision"],
               "#Params (B)": info["additional_details"]["params_billions"],
               "Architecture": info["additional_details"]["architecture"], "Hub License": "apache-2.0"}
        for result in data["evaluation_results"]:
            row[inverse[result["evaluation_name"]]] = result["score_details"]["score"]
            row[inverse[result["evaluation_name"]].removesuffix(" Raw")] = result["score_details"]["score"] * 100
        rows.append(row)
    pl.DataFrame(rows).write_parquet(path)
    return path


def test_open_llm_leaderboard_contents_matches_the_same_board_in_eee(tmp_path: Path) -> None:
    contents = open_llm_contents_from_eee(tmp_path / "train-00000-of-00001.parquet")
    assert importers.detect(contents).name == "openllm-contents"
    parsed = openllm._parse(contents, ImportContext())
    expected = expected_records().filter(pl.col("dataset").str.starts_with("hfopenllm_v2/"))
    keys = ["model", "model_revision", "dataset", "metric", "value"]
    assert parsed.records.select(keys).sort(keys).equals(expected.select(keys).sort(keys))
    assert {m["model"]: m.get("n_parameters") for m in parsed.models}["HuggingFaceTB/SmolLM2-360M-Instruct"] == 362_000_000


def test_unified_csv_and_jsonl_round_trip_through_export(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    original = import_fixture(store, RAW / "amlb", RAW / "aider")
    for suffix in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"export.{suffix}"
        assert export_records(store, out) == original.height
        assert importers.detect(out).name == f"records-{suffix}"
        copy = Store(f"sqlite:///{tmp_path / f'{suffix}.db'}")
        again = import_fixture(copy, out)
        assert comparable(again).equals(comparable(original)), suffix


@pytest.mark.parametrize(
    "relative",
    [
        "raw/mteb/results/cl-nagoya__ruri-base/1ae40b8b6c78518a499425086bab8fc16c2e4b0e/JaCWIRRetrieval.json",
        "raw/every_eval_ever/data/hal-gaia/anthropic/claude-3-7-sonnet-20250219/101c697f-6b90-41dc-8d00-30481e0ab429.json",
        "raw/aider/aider/website/_data/refactor_leaderboard.yml",
        "raw/evalplus/results.json",
        "raw/amlb/reports/old/tables/8h/all_results.csv",
        "raw/alpaca_eval/alpaca_eval/leaderboards/data_AlpacaEval_2/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv",
        "model_cards/nvidia__stt_ar_fastconformer_hybrid_large_pcd_v1.0/README.md",
        "export.jsonl",
        "export.csv",
    ],
)
def test_a_file_saved_with_a_byte_order_mark_imports_as_without(tmp_path: Path, relative: str) -> None:
    """Windows editors and Excel start UTF-8 text with a byte-order mark; JSON and JSON-lines files
    with one used to fail (json: 'Unexpected UTF-8 BOM'; polars stopped at character 0) or went
    undetected."""
    if relative.startswith("export."):
        source = tmp_path / "source"
        source.mkdir()
        store = Store(f"sqlite:///{tmp_path / 'a.db'}")
        import_fixture(store, RAW / "aider")
        export_records(store, source / relative)
        original = source / relative
    else:
        original = FIXTURES / relative
    frames = {}
    for copy in ("plain", "marked"):
        path = tmp_path / copy / relative
        shutil.copytree(original.parent, path.parent)
        if copy == "marked":
            path.write_bytes(b"\xef\xbb\xbf" + original.read_bytes())
        fmt = importers.detect(path)
        assert fmt is not None, copy
        frames[copy] = (fmt.name, import_fixture(Store(f"sqlite:///{tmp_path / copy}.db"), path))
    assert frames["marked"][0] == frames["plain"][0]
    assert frames["plain"][1].height > 0
    assert comparable(frames["marked"][1]).equals(comparable(frames["plain"][1]))


def test_export_refuses_an_unknown_source_and_a_broken_jsonl_names_its_line(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    import_fixture(store, RAW / "aider")
    out = tmp_path / "only.csv"
    with pytest.raises(NotFoundError, match=r"no source named 'aidr'.*it has: aider"):
        export_records(store, out, sources=["aidr"])
    assert not out.exists()
    assert export_records(store, out, sources=["aider"]) > 0
    lines = out.with_suffix(".jsonl")
    export_records(store, lines)
    text = lines.read_text().splitlines()
    lines.write_text("\n".join([text[0], '{"model": ', *text[1:]]) + "\n")
    report = import_paths(Store(f"sqlite:///{tmp_path / 'b.db'}"), [lines], fmt="records-jsonl")
    assert report.failed and "line 2:" in report.failed[0].error


def test_modellens_corpus_csv_imports_with_dataset_descriptions(tmp_path: Path) -> None:
    amlb = expected_records().filter(pl.col("source") == "amlb")
    corpus = tmp_path / "modellens.csv"
    amlb.select(
        "task", "dataset", "model", "metric", "value",
        pl.concat_str(pl.lit("OpenML tabular task "), "dataset").alias("dataset_desp"),
    ).unique(["dataset", "model", "metric"]).write_csv(corpus)
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    frame = import_fixture(store, corpus)
    assert set(frame["source"]) == {"modellens"}
    with store.engine.connect() as conn:
        description = conn.exec_driver_sql("SELECT description FROM datasets WHERE name = 'albert'").scalar()
        direction = conn.exec_driver_sql("SELECT higher_is_better FROM metrics WHERE name = 'logloss'").scalar()
    assert description == "OpenML tabular task albert"
    assert direction in (False, 0)  # from the explicit direction table: the corpus has no flag


def test_metadata_files_fill_models_and_datasets(tmp_path: Path, shared_data: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    report = import_paths(store, [shared_data / "meta" / "mteb_tasks.jsonl", shared_data / "meta" / "models.jsonl"])
    assert not report.failed
    with store.engine.connect() as conn:
        task = conn.exec_driver_sql("SELECT task_type, main_metric FROM datasets WHERE name = 'STS16'").one()
        n_models = conn.exec_driver_sql("SELECT COUNT(*) FROM models").scalar()
    assert tuple(task) == ("STS", "cosine_spearman")
    assert n_models >= 6000


def test_a_link_back_up_the_tree_imports_each_file_once(tmp_path: Path) -> None:
    folder = tmp_path / "boards"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "results.json").write_bytes((RAW / "evalplus" / "results.json").read_bytes())
    (folder / "sub" / "up").symlink_to(folder, target_is_directory=True)
    (folder / "again.json").symlink_to(folder / "sub" / "results.json")
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    report = import_paths(store, [folder])
    assert [Path(u.label).name for u in report.units] == ["again.json"]
    assert not report.failed and report.totals().added > 0


def test_progress_moves_within_a_tree_and_within_a_big_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender import ingest

    seen: list[tuple[float, float | None, str]] = []
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    import_paths(store, [RAW / "mteb"], progress=lambda d, t=None, m="": seen.append((d, t, m)))
    n_models = len([p for p in (RAW / "mteb" / "results").iterdir() if p.is_dir()])
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[-1] == 1 and all(t == 1 for _, t, _ in seen)
    starts = sorted({round(d, 6) for d in done if 0 < d < 1})
    assert [round(k / n_models, 6) for k in range(1, n_models)] == starts  # one step per model folder
    assert {m for _, _, m in seen} >= {p.name for p in (RAW / "mteb" / "results").iterdir()}

    monkeypatch.setattr(ingest, "CHUNK_ROWS", 100)
    big = tmp_path / "big.csv"
    pl.DataFrame({"model": [f"m{i}" for i in range(450)], "dataset": "d", "metric": "accuracy",
                  "value": [i / 450 for i in range(450)]}).write_csv(big)
    seen.clear()
    import_paths(store, [big], progress=lambda d, t=None, m="": seen.append((d, t, m)))
    assert [round(d, 3) for d, _, _ in seen] == [0, 0, 0.222, 0.444, 0.667, 0.889, 1, 1]
