"""Re-importing unchanged files is answered from the store; anything that could make that answer
wrong (changed bytes, a new file, another write to the source, other options) reads the files again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from recommender import ingest, unchanged_files
from recommender.ingest import import_paths
from recommender.store import Store
from recommender.store.export import records_frame as stored_frame
from tests.conftest import RAW


def records_csv(path: Path, values: list[float], source: str = "board") -> Path:
    pl.DataFrame({
        "source": [source] * len(values),
        "model": [f"org/model-{i}" for i in range(len(values))],
        "dataset": ["ds"] * len(values), "metric": ["accuracy"] * len(values), "value": values,
        "source_ref": [f"file:{path.name}"] * len(values),
    }).write_csv(path)
    return path


@pytest.fixture
def parse_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the import really planned (detected and parsed)."""
    calls: list[str] = []
    original = ingest.plan

    def spy(targets, forced=None, origin=None, _seen=None):  # type: ignore[no-untyped-def]
        calls.extend(str(t) for t in targets)
        return original(targets, forced, origin, _seen)

    monkeypatch.setattr(ingest, "plan", spy)
    return calls


def value_of(store: Store, model: str) -> float:
    frame = stored_frame(store)
    return frame.filter(pl.col("model") == model)["value"].item()


def test_an_unchanged_folder_is_answered_without_parsing(db_url: str, tmp_path: Path, parse_calls: list[str]) -> None:
    folder = tmp_path / "boards"
    folder.mkdir()
    records_csv(folder / "a.csv", [0.1, 0.2, 0.3])
    records_csv(folder / "b.csv", [0.5], source="other")
    (folder / "notes.txt").write_text("not a leaderboard")
    store = Store(db_url)
    first = import_paths(store, [folder])
    assert (first.totals().added, first.skipped) == (4, [str(folder / "notes.txt")])

    parse_calls.clear()
    again = import_paths(store, [folder])
    assert parse_calls == []
    assert [(u.label, u.format, u.counts.unchanged) for u in again.units] == [
        (str(folder / "a.csv"), "records-csv", 3), (str(folder / "b.csv"), "records-csv", 1)]
    assert again.totals().added == 0 and again.skipped == first.skipped
    store.close()


def test_changed_bytes_or_a_new_file_are_read_again(tmp_path: Path, parse_calls: list[str]) -> None:
    folder = tmp_path / "boards"
    folder.mkdir()
    records_csv(folder / "a.csv", [0.1, 0.2])
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    import_paths(store, [folder])

    records_csv(folder / "a.csv", [0.1, 0.9])
    changed = import_paths(store, [folder])
    assert parse_calls and (changed.totals().updated, changed.totals().unchanged) == (1, 1)
    assert value_of(store, "org/model-1") == 0.9

    records_csv(folder / "z.csv", [0.7], source="z")
    grown = import_paths(store, [folder])
    assert grown.totals().added == 1 and grown.totals().unchanged == 2

    parse_calls.clear()
    assert import_paths(store, [folder]).totals().unchanged == 3 and parse_calls == []


def test_a_later_write_to_the_same_source_makes_the_file_count_again(tmp_path: Path, parse_calls: list[str]) -> None:
    """b.csv overwrites a value a.csv set; importing a.csv again must restore it, not say "unchanged"."""
    a = records_csv(tmp_path / "a.csv", [0.1, 0.2])
    b = records_csv(tmp_path / "b.csv", [0.1, 0.8])
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    import_paths(store, [a])
    assert import_paths(store, [b]).totals().updated == 1

    parse_calls.clear()
    again = import_paths(store, [a])
    assert parse_calls == [str(a)]
    assert again.totals().updated == 1 and value_of(store, "org/model-1") == 0.2


def test_force_compares_every_row_again(tmp_path: Path, parse_calls: list[str]) -> None:
    """After a hand edit of the database, --force puts the file's values back."""
    a = records_csv(tmp_path / "a.csv", [0.1, 0.2])
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    import_paths(store, [a])
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE records SET value = 0.99")
    assert import_paths(store, [a]).totals().unchanged == 2  # the shortcut cannot see a hand edit
    parse_calls.clear()
    forced = import_paths(store, [a], force=True)
    assert parse_calls == [str(a)] and forced.totals().updated == 2
    assert value_of(store, "org/model-1") == 0.2


def test_the_cli_hashes_each_target_once_even_when_it_has_to_import(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli.main import main

    a = records_csv(tmp_path / "a.csv", [0.1, 0.2])
    hashed: list[Path] = []
    original = unchanged_files.snapshot
    monkeypatch.setattr(unchanged_files, "snapshot", lambda t: hashed.append(t) or original(t))
    assert main(["--db", str(tmp_path / "c.db"), "-q", "import", str(a)]) == 0
    assert hashed == [a]
    hashed.clear()
    assert main(["--db", str(tmp_path / "c.db"), "-q", "import", "--force", str(a)]) == 0
    assert hashed == [a]


def test_a_remembered_row_this_version_cannot_read_is_ignored(tmp_path: Path, parse_calls: list[str]) -> None:
    a = records_csv(tmp_path / "a.csv", [0.1, 0.2])
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    import_paths(store, [a])
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE import_targets SET units = '[{\"label\": \"a.csv\", \"new_field\": 1}]'")
    parse_calls.clear()
    again = import_paths(store, [a])
    assert parse_calls == [str(a)] and again.totals().unchanged == 2 and not again.failed


def test_other_options_are_another_import(tmp_path: Path) -> None:
    a = records_csv(tmp_path / "a.csv", [0.1, 0.2])
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    import_paths(store, [a])
    renamed = import_paths(store, [a], source="renamed")
    assert renamed.totals().added == 2
    with store.engine.connect() as conn:
        targets = [json.loads(t) for (t,) in conn.exec_driver_sql("SELECT target FROM import_targets")]
    assert sorted(t[2] for t in targets) == ["", "renamed"]


def test_native_trees_and_failed_files_are_not_remembered(tmp_path: Path) -> None:
    broken = tmp_path / "broken_leaderboard.yml"
    broken.write_text("- dirname: x\n  test_cases: 3\n  pass_rate_1: [unclosed\n")
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    report = import_paths(store, [RAW / "mteb", broken, RAW / "evalplus"])
    assert report.failed and report.totals().added > 0
    with store.engine.connect() as conn:
        remembered = [json.loads(t)[0] for (t,) in conn.exec_driver_sql("SELECT target FROM import_targets")]
    assert remembered == [str((RAW / "evalplus").resolve())]


def test_snapshot_gives_up_on_folders_too_big_to_hash_cheaply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(4):
        (tmp_path / f"{i}.csv").write_text("x")
    monkeypatch.setattr(unchanged_files, "MAX_FILES", 3)
    assert unchanged_files.snapshot(tmp_path) is None
    monkeypatch.setattr(unchanged_files, "MAX_FILES", 4)
    assert set(unchanged_files.snapshot(tmp_path) or {}) == {"0.csv", "1.csv", "2.csv", "3.csv"}


def test_snapshot_ends_on_a_link_back_up_the_tree(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.csv").write_text("x")
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    assert list(unchanged_files.snapshot(tmp_path) or {}) == [str(Path("sub") / "a.csv")]


def test_the_cli_answers_an_unchanged_import_without_loading_polars(tmp_path: Path) -> None:
    folder = tmp_path / "boards"
    shutil.copytree(RAW / "evalplus", folder)
    db = tmp_path / "c.db"
    script = (
        "import sys, json; from app.cli.main import main; rc = main(sys.argv[1:]);"
        "print(json.dumps({'rc': rc, 'polars': 'polars' in sys.modules}), file=sys.stderr)"
    )

    def run(*extra: str) -> tuple[dict, dict]:
        done = subprocess.run([sys.executable, "-c", script, "--db", str(db), "import", "--json", *extra, str(folder)],
                              capture_output=True, text=True, env=os.environ, timeout=120)
        return json.loads(done.stdout), json.loads(done.stderr.strip().splitlines()[-1])

    first, first_state = run()
    again, again_state = run()
    forced, forced_state = run("--force")
    assert first_state == {"rc": 0, "polars": True} and again_state == {"rc": 0, "polars": False}
    assert forced_state == {"rc": 0, "polars": True} and forced["totals"] == again["totals"]
    assert again["totals"]["unchanged"] == first["totals"]["added"] > 0
    assert [f["path"] for f in again["files"]] == [f["path"] for f in first["files"]]
    assert all(f["not_read"] for f in again["files"]) and not any(f["not_read"] for f in first["files"] + forced["files"])
    assert [f["target"] for f in again["files"]] == [f["target"] for f in first["files"]]
