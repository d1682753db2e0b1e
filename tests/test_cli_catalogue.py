"""The catalogue CLI as a user runs it: a real process, a real SQLite file, exit codes, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, RAW


def lensroute(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_version_and_help() -> None:
    done = lensroute("--version")
    assert done.returncode == 0 and done.stdout.startswith("lensroute ")
    helped = lensroute("--help")
    assert "exit codes" in helped.stdout and "import" in helped.stdout


def test_import_stats_export_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "cat.db"
    done = lensroute("--db", str(db), "import", str(RAW / "aider"), str(RAW / "evalplus"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["failed"] == 0 and report["totals"]["added"] > 0
    assert {f["format"] for f in report["files"]} == {"aider-yaml", "evalplus-json", "evalperf-json"}

    stats = json.loads(lensroute("--db", str(db), "stats", "--json").stdout)
    assert set(stats) >= {"models", "datasets", "metrics", "records", "sources"}
    assert stats["records"] == report["totals"]["added"]
    assert set(stats["sources"]) == {"aider", "evalplus"}

    again = json.loads(lensroute("--db", str(db), "import", str(RAW / "aider"), str(RAW / "evalplus"), "--json").stdout)
    assert again["totals"]["added"] == 0 and again["totals"]["unchanged"] == stats["records"]

    out = tmp_path / "all.jsonl"
    done = lensroute("--db", str(db), "export", str(out))
    assert done.returncode == 0 and len(out.read_text().splitlines()) == stats["records"]


def test_a_bad_file_fails_alone_and_the_exit_code_says_so(tmp_path: Path) -> None:
    broken = tmp_path / "broken_leaderboard.yml"
    broken.write_text("- dirname: x\n  test_cases: 3\n  pass_rate_1: [unclosed\n")
    db = tmp_path / "cat.db"
    done = lensroute("--db", str(db), "import", str(broken), str(RAW / "aider" / "aider/website/_data/refactor_leaderboard.yml"))
    assert done.returncode == 1
    assert "broken_leaderboard.yml: FAILED" in done.stdout and "invalid YAML" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    stats = json.loads(lensroute("--db", str(db), "stats", "--json").stdout)
    assert stats["sources"] == {"aider": 56}


def test_unknown_format_and_missing_file_are_one_line_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    done = lensroute("--db", str(tmp_path / "c.db"), "import", str(text), str(tmp_path / "missing.csv"))
    assert done.returncode == 1
    assert "cannot tell the format of notes.txt" in done.stdout and "no such file" in done.stdout
    bad_db = lensroute("--db", "postgresql://nobody@127.0.0.1:1/x", "stats")
    assert bad_db.returncode == 1 and len(bad_db.stderr.strip().splitlines()) == 1
    assert bad_db.stderr.startswith("lensroute: error: cannot open database")


def test_reading_commands_leave_no_empty_catalogue_behind(tmp_path: Path) -> None:
    """A mistyped --db used to create an empty catalogue there and report zeros."""
    db = tmp_path / "typo" / "catalogue.db"
    for command in (["stats"], ["show", "model", "bge-m3"], ["export", str(tmp_path / "out.csv")], ["train"]):
        done = lensroute("--db", str(db), *command)
        assert done.returncode == 4, (command, done.stderr)
        assert done.stderr.strip() == (f"lensroute: error: no catalogue at {db}: create it with `lensroute init --db {db}` "
                                       f"(the bundled seed) or fill it with `lensroute import --db {db} PATH`")
    listing = lensroute("--db", str(db), "crawl", "--list")
    assert listing.returncode == 0 and "never crawled" in listing.stdout
    assert not db.exists() and not db.parent.exists()
    assert lensroute("--db", str(db), "import", str(FIXTURES / "raw/aider")).returncode == 0  # writing creates it
    assert json.loads(lensroute("--db", str(db), "stats", "--json").stdout)["records"] > 0


def test_forced_format_that_does_not_fit_fails_cleanly(tmp_path: Path) -> None:
    done = lensroute("--db", str(tmp_path / "c.db"), "import", "--format", "amlb-csv",
                     str(FIXTURES / "raw/alpaca_eval/alpaca_eval/leaderboards/data_AlpacaEval_2/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"))
    assert done.returncode == 1 and "not an AMLB results table" in done.stdout


def test_usage_errors_exit_2() -> None:
    assert lensroute("import").returncode == 2
    assert lensroute("export", "x.parquet", "--format", "xlsx").returncode == 2


@pytest.mark.parametrize("args", [
    ("route", "evaluate", "t.parquet", "--seed", "-1"),
    ("train", "--epochs", "0"),
    ("evaluate", "--split", "new-model", "--seed", "-3"),
    ("models", "bench", "m", "--sparsity", "1.5"),
    ("crawl", "hf-hub", "--limit", "zero"),
    ("route", "answer", "q", "--cost-weight", "-0.5"),
])
def test_out_of_range_numbers_are_usage_errors(args: tuple[str, ...], tmp_path: Path) -> None:
    """Caught by argparse before anything is opened: one usage line, exit 2, no traceback."""
    done = lensroute("--db", str(tmp_path / "c.db"), *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "error: argument" in done.stderr
    assert not (tmp_path / "c.db").exists()


def test_export_format_must_be_known(tmp_path: Path) -> None:
    done = lensroute("--db", str(tmp_path / "c.db"), "export", str(tmp_path / "x.xlsx"))
    assert done.returncode == 2 and "cannot tell the export format" in done.stderr


def test_lensroute_db_environment_variable_is_honoured(tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    done = lensroute("import", str(RAW / "aider/aider/website/_data/refactor_leaderboard.yml"), env={"LENSROUTE_DB": str(db)})
    assert done.returncode == 0 and db.exists()


@pytest.mark.shared_data
def test_seed_init_then_raw_import_reproduces_the_seed(tmp_path: Path, shared_data: Path) -> None:
    db = tmp_path / "cat.db"
    assert lensroute("--db", str(db), "init").returncode == 0
    before = json.loads(lensroute("--db", str(db), "stats", "--json").stdout)
    assert before["records"] > 120_000
    done = lensroute("--db", str(db), "import", str(shared_data / "raw"), "--json")
    report = json.loads(done.stdout)
    assert report["failed"] == 0 and report["totals"]["added"] == 0
    # the only changes: one LiveCodeBench Pro model whose newer scrape is not among the raw files
    assert report["totals"]["updated"] == 3
