"""Several programs opening a new SQLite file at the same moment (torchrun's ranks open the
embedding cache and the catalogue together): each must get it, none "database is locked".

Switching a new file to WAL is where they collide: each holds a shared lock and wants the
exclusive one, and SQLite refuses one of them at once instead of waiting (busy_timeout does not
apply). Before `driver.enable_wal` this failed about one trial in ten (4 processes per trial).
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from recommender.store import driver
from recommender.text_encoder import EmbeddingCache

PROCESSES = 4
TRIALS = 60


def _open_cache(path: str) -> None:
    cache = EmbeddingCache(Path(path), "race")
    cache.put_many({cache.key("a"): np.ones(3, np.float32)})


def _open_catalogue(path: str) -> None:
    connection = driver.connect(Path(path))
    connection.execute("CREATE TABLE IF NOT EXISTS t (a)")
    connection.close()


def _opener(open_file, path: str, barrier, outcomes) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    try:
        open_file(path)
        outcomes.put("ok")
    except Exception as exc:  # the test reports whatever it was
        outcomes.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("open_file", [_open_cache, _open_catalogue], ids=["embedding-cache", "catalogue"])
def test_processes_opening_a_new_file_together_all_get_it(open_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    context = multiprocessing.get_context("fork")  # the children only touch sqlite3
    failures = []
    for trial in range(TRIALS):
        path = str(tmp_path / f"new-{trial}.sqlite")
        barrier, outcomes = context.Barrier(PROCESSES), context.Queue()
        workers = [context.Process(target=_opener, args=(open_file, path, barrier, outcomes)) for _ in range(PROCESSES)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        failures += [o for o in (outcomes.get(timeout=5) for _ in workers) if o != "ok"]
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert not failures, failures


class _Refusing:
    """A connection whose WAL switch is refused `times` times (fault injection), then works."""

    def __init__(self, times: int, message: str = "database is locked") -> None:
        self.left, self.message, self.calls = times, message, 0

    def execute(self, statement: str) -> None:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise sqlite3.OperationalError(self.message)


def test_enable_wal_retries_a_refusal_and_gives_up_at_its_deadline_or_on_another_error() -> None:
    refused_twice = _Refusing(2)
    driver.enable_wal(refused_twice)  # type: ignore[arg-type]
    assert refused_twice.calls == 3
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        driver.enable_wal(_Refusing(10**6), wait_s=0.05)  # type: ignore[arg-type]
    broken = _Refusing(1, "disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        driver.enable_wal(broken)  # type: ignore[arg-type]
    assert broken.calls == 1
