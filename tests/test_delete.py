"""`lensroute delete`: taking a source's records (or one model's) back out of the catalogue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.errors import NotFoundError, UsageError
from recommender.ingest import import_paths
from recommender.store import Store
from recommender.store.queries import catalogue_stats
from recommender.store.removal import remove_records
from tests.conftest import RAW, REPO


def scalar(store: Store, sql: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(sql).scalar() or 0)


AIDER_ID = "(SELECT id FROM sources WHERE name = 'aider')"


def test_deleting_a_model_then_a_source_takes_their_history_and_a_reimport_puts_them_back(store: Store) -> None:
    assert not import_paths(store, [RAW / "aider", RAW / "evalplus"]).failed
    before = catalogue_stats(store).sources
    n = before["aider"]
    with store.writing() as conn:  # a hand edit, then a forced re-import: every aider record has a superseded value
        conn.exec_driver_sql(f"UPDATE records SET value = value + 1 WHERE source_id = {AIDER_ID}")
    assert import_paths(store, [RAW / "aider"], force=True).totals().updated == n
    assert scalar(store, "SELECT COUNT(*) FROM record_history") == n

    dry = remove_records(store, "aider", dry_run=True)
    assert (dry.records, dry.history, dry.applied) == (n, n, False)
    assert catalogue_stats(store).sources == before

    model = next(name for name in ("gpt-4o", "claude-3-5-sonnet-20241022", "o1")
                 if remove_records(store, "aider", name, dry_run=True).records)
    one = remove_records(store, "aider", model.upper())  # resolved as show resolves names
    assert one.model == model and 0 < one.records < n and one.applied
    assert catalogue_stats(store).sources == {**before, "aider": n - one.records}
    assert scalar(store, "SELECT COUNT(*) FROM record_history") == n - one.records
    assert scalar(store, f"SELECT SUM(n_values) FROM metric_scales WHERE source_id = {AIDER_ID}") == n - one.records
    with pytest.raises(NotFoundError, match=f"source 'aider' holds no records of model '{model}'"):
        remove_records(store, "aider", model)

    rest = remove_records(store, "aider")
    assert rest.records == n - one.records
    assert catalogue_stats(store).sources == {"evalplus": before["evalplus"]}
    assert scalar(store, "SELECT COUNT(*) FROM record_history") == 0
    assert scalar(store, f"SELECT COUNT(*) FROM metric_scales WHERE source_id = {AIDER_ID}") == 0
    with pytest.raises(NotFoundError, match=r"no source named 'nope' in the catalogue \(it has: evalplus\)"):
        remove_records(store, "nope")
    with pytest.raises(UsageError, match="name the model"):
        remove_records(store, "evalplus", " ")

    # the same file again is compared row by row, not answered "unchanged" from its old digest
    again = import_paths(store, [RAW / "aider"])
    assert again.totals().added == n and catalogue_stats(store).sources == before


def lensroute(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ), cwd=REPO, stdin=subprocess.DEVNULL)


def test_delete_from_the_command_line_asks_for_yes_off_a_terminal(fixture_store: Store, tmp_path: Path) -> None:
    db = fixture_store.url
    n = catalogue_stats(fixture_store).sources["aider"]
    datasets = scalar(fixture_store, f"SELECT COUNT(DISTINCT dataset_id) FROM records WHERE source_id = {AIDER_ID}")
    unasked = lensroute("--db", db, "delete", "--source", "aider")
    assert unasked.returncode == 2 and len(unasked.stderr.strip().splitlines()) == 1
    assert unasked.stderr.startswith(f"lensroute: error: this would delete {n:,} records of source 'aider' (")
    assert unasked.stderr.strip().endswith("pass --yes to delete without asking (--dry-run only counts)")
    assert catalogue_stats(fixture_store).sources["aider"] == n
    dry = lensroute("--db", db, "delete", "--source", "aider", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith(f"would delete {n:,} records of source 'aider'")
    done = lensroute("--db", db, "delete", "--source", "aider", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"source": "aider", "model": None, "records": n, "history": 0,
                                       "models": json.loads(done.stdout)["models"], "datasets": datasets, "applied": True}
    assert "aider" not in catalogue_stats(fixture_store).sources
    gone = lensroute("--db", db, "delete", "--source", "aider", "--yes")
    assert gone.returncode == 3 and "no source named 'aider'" in gone.stderr and "Traceback" not in gone.stderr
    export = lensroute("--db", db, "export", "--source", "aider", str(tmp_path / "aider.csv"))
    assert export.returncode == 3 and "no source named 'aider'" in export.stderr  # not an empty file called a success
    assert not (tmp_path / "aider.csv").exists()
