"""Idempotent writes, provenance, aliases, metric direction and scales — on both engines."""

from __future__ import annotations

import json

import polars as pl
import pytest

from recommender.importers.base import ParsedFile
from recommender.ingest import write_parsed
from recommender.progress import CancelToken
from recommender.records import Rejected, conform, records_frame
from recommender.store import Store
from recommender.store.export import records_frame as stored_frame
from recommender.store.queries import catalogue_stats
from recommender.store.writer import write_records


def row(model: str, dataset: str = "d1", metric: str = "acc", value: float = 0.5, **extra: object) -> dict:
    return {"source": "src", "model": model, "dataset": dataset, "metric": metric, "value": value,
            "source_ref": "file:a.csv", **extra}


def write(store: Store, rows: list[dict], unit: str | None = None):  # type: ignore[no-untyped-def]
    return write_parsed(store, ParsedFile(records=records_frame(rows)), crawled_at="2026-01-01T00:00:00+00:00",
                        default_source="src", cancel=CancelToken(), unit=unit)


def scalar(store: Store, sql: str) -> object:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar()


def test_reimport_adds_nothing_and_changed_value_updates_with_history(store: Store) -> None:
    rows = [row("org/a", value=0.5), row("org/b", value=0.7)]
    first = write(store, rows)
    assert (first.added, first.updated, first.unchanged) == (2, 0, 0)
    again = write(store, rows)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)

    changed = [row("org/a", value=0.55, source_ref="file:b.csv"), row("org/b", value=0.7)]
    third = write_parsed(store, ParsedFile(records=records_frame(changed)), crawled_at="2026-02-01T00:00:00+00:00",
                         default_source="src", cancel=CancelToken())
    assert (third.added, third.updated, third.unchanged) == (0, 1, 1)
    frame = stored_frame(store).sort("model")
    assert frame["value"].to_list() == [0.55, 0.7]
    assert frame["source_ref"].to_list() == ["file:b.csv", "file:a.csv"]
    with store.engine.connect() as conn:
        history = conn.exec_driver_sql("SELECT value, source_ref, crawled_at, replaced_at FROM record_history").all()
    assert [tuple(h) for h in history] == [(0.5, "file:a.csv", "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00")]
    assert scalar(store, "SELECT COUNT(*) FROM records") == 2


def test_unit_digest_answers_an_unchanged_reimport_and_is_invalidated_by_other_writes(store: Store) -> None:
    rows = [row("org/a", value=0.5), row("org/b", value=0.7)]
    assert write(store, rows, unit="u1").added == 2
    cached = write(store, rows, unit="u1")
    assert (cached.added, cached.updated, cached.unchanged) == (0, 0, 2)
    # another unit of the same source changes a value: the digest no longer proves anything
    write(store, [row("org/a", value=0.9)], unit="u2")
    reverted = write(store, rows, unit="u1")
    assert (reverted.added, reverted.updated, reverted.unchanged) == (0, 1, 1)
    assert stored_frame(store).sort("model")["value"].to_list() == [0.5, 0.7]


def test_model_names_fold_case_revision_suffix_and_unique_org(store: Store) -> None:
    write(store, [row("BAAI/bge-small-en", dataset="d1")])
    write(store, [row("baai/BGE-small-en", dataset="d2"), row("BAAI/bge-small-en@main", dataset="d3"),
                  row("bge-small-en", dataset="d4")])
    assert scalar(store, "SELECT COUNT(*) FROM models") == 1
    assert scalar(store, "SELECT name FROM models") == "BAAI/bge-small-en"
    with store.engine.connect() as conn:
        kinds = dict(tuple(r) for r in conn.exec_driver_sql("SELECT alias, kind FROM model_aliases").all())
    assert kinds == {"baai/bge-small-en": "name", "bge-small-en": "org"}


def test_bare_name_shared_by_two_orgs_stays_a_separate_model(store: Store) -> None:
    write(store, [row("alice/tiny"), row("bob/tiny"), row("tiny", dataset="d2")])
    assert scalar(store, "SELECT COUNT(*) FROM models") == 3


def test_metric_direction_from_source_flag_table_or_unknown(store: Store) -> None:
    write(store, [
        row("m", metric="logloss", higher_is_better=None),  # table: lower is better
        row("m", metric="weirdness", higher_is_better=None),  # unknown, never guessed
        row("m", metric="custom_gain", higher_is_better=True),  # the source says so
    ])
    with store.engine.connect() as conn:
        got = {r[0]: (r[1], r[2]) for r in conn.exec_driver_sql("SELECT name, higher_is_better, direction_from FROM metrics")}
    assert got["logloss"] == (False, "table")
    assert got["weirdness"] == (None, "unknown")
    assert got["custom_gain"] == (True, "source")
    # a later source flag settles an unknown direction
    write(store, [row("m2", metric="weirdness", higher_is_better=False)])
    assert scalar(store, "SELECT direction_from FROM metrics WHERE name = 'weirdness'") == "source"


def test_value_scale_is_detected_per_source_and_metric(store: Store) -> None:
    write(store, [row("a", metric="pass@1", value=81.7), row("b", metric="pass@1", value=12.0),
                  row("a", metric="acc", value=0.9), row("a", metric="rt", value=1500.0)])
    with store.engine.connect() as conn:
        scales = {r[0]: r[1] for r in conn.exec_driver_sql(
            "SELECT m.name, s.scale FROM metric_scales s JOIN metrics m ON m.id = s.metric_id")}
    assert scales == {"pass@1": "percent", "acc": "fraction", "rt": "unbounded"}


def test_rows_without_value_or_key_are_rejected_with_reasons() -> None:
    frame = pl.DataFrame({"model": ["a", "b", None, "c"], "dataset": ["d"] * 4, "metric": ["m"] * 4,
                          "value": ["0.5", "nan", "0.1", "abc"]})
    rejected = Rejected()
    kept = conform(frame, default_source="s", rejected=rejected)
    assert kept["model"].to_list() == ["a"]
    assert rejected.reasons == {"missing model, dataset or metric": 1, "value missing, NaN or infinite": 1,
                                "value not a number": 1}
    assert rejected.examples == {"missing model, dataset or metric": "(none) · d · m = '0.1'",
                                 "value missing, NaN or infinite": "b · d · m = 'nan'",
                                 "value not a number": "c · d · m = 'abc'"}
    assert rejected.describe(most=1).startswith("1 ") and ", e.g. " in rejected.describe()


def test_a_failing_write_rolls_back_the_whole_unit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender.store import writer

    def broken(conn, frame):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(writer, "_update_scales", broken)
    with pytest.raises(RuntimeError):
        write(store, [row("org/a"), row("org/b")])
    stats = catalogue_stats(store)
    assert (stats.records, scalar(store, "SELECT COUNT(*) FROM models")) == (0, 0)


def test_model_metadata_fills_fields_and_merges_extra(store: Store) -> None:
    parsed = ParsedFile(records=records_frame([row("org/a")]),
                        models=[{"model": "org/a", "n_parameters": 7_000_000_000, "extra": {"x": {"k": 1}}}])
    write_parsed(store, parsed, crawled_at="t", default_source="src", cancel=CancelToken())
    parsed = ParsedFile(models=[{"model": "ORG/A", "licence": "mit", "extra": {"y": 2}}])
    write_parsed(store, parsed, crawled_at="t", default_source="src", cancel=CancelToken())
    with store.engine.connect() as conn:
        n, licence, extra = conn.exec_driver_sql("SELECT n_parameters, licence, extra FROM models").one()
    assert (n, licence, json.loads(extra)) == (7_000_000_000, "mit", {"x": {"k": 1}, "y": 2})


def test_write_records_on_empty_frame_is_a_no_op(store: Store) -> None:
    with store.writing() as conn:
        counts = write_records(conn, records_frame([]))
    assert (counts.added, counts.updated, counts.unchanged) == (0, 0, 0)
