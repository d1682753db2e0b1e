"""Crawl bookkeeping in the store: runs with their cursors, and the conditional-request cache.

A run that did not finish (failed, cancelled, or a process that died while `running`) is
resumed by the next crawl of the same source and base URL, from its saved cursor. Cursor and
cache entries are written in the same transaction as the records they describe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from recommender.store import Store
from recommender.store.writer import _mark, utc_now

if TYPE_CHECKING:
    from recommender.store.driver import DriverConnection

UNFINISHED = ("running", "failed", "cancelled")


@dataclass
class CrawlRun:
    id: int
    source: str
    base_url: str
    cursor: dict | None
    counts: dict = field(default_factory=dict)
    resumed: bool = False


def start_or_resume(store: Store, source: str, base_url: str, restart: bool = False) -> CrawlRun:
    with store.writing() as conn:
        q = _mark(conn)
        row = conn.exec_driver_sql(
            f"SELECT id, status, cursor, counts FROM crawl_runs WHERE source = {q} AND base_url = {q} "
            "ORDER BY id DESC LIMIT 1",
            (source, base_url),
        ).first()
        if row is not None and row[1] in UNFINISHED and not restart:
            conn.exec_driver_sql(
                f"UPDATE crawl_runs SET status = 'running', error = NULL WHERE id = {q}", (row[0],)
            )
            return CrawlRun(row[0], source, base_url, json.loads(row[2]) if row[2] else None,
                            json.loads(row[3]) if row[3] else {}, resumed=True)
        conn.exec_driver_sql(
            f"INSERT INTO crawl_runs (source, base_url, status, started_at) VALUES ({q}, {q}, 'running', {q})",
            (source, base_url, utc_now()),
        )
        run_id = conn.exec_driver_sql(
            f"SELECT MAX(id) FROM crawl_runs WHERE source = {q} AND base_url = {q}", (source, base_url)
        ).scalar()
    return CrawlRun(int(run_id), source, base_url, None)


def save_progress(conn: DriverConnection, run: CrawlRun) -> None:
    q = _mark(conn)
    conn.exec_driver_sql(
        f"UPDATE crawl_runs SET cursor = {q}, counts = {q} WHERE id = {q}",
        (json.dumps(run.cursor) if run.cursor is not None else None, json.dumps(run.counts), run.id),
    )


def finish(store: Store, run: CrawlRun, status: str, error: str | None = None) -> None:
    with store.writing() as conn:
        q = _mark(conn)
        conn.exec_driver_sql(
            f"UPDATE crawl_runs SET status = {q}, error = {q}, counts = {q}, cursor = {q}, finished_at = {q} WHERE id = {q}",
            (status, error, json.dumps(run.counts),
             None if status == "done" else (json.dumps(run.cursor) if run.cursor is not None else None),
             utc_now(), run.id),
        )


def recent_runs(store: Store, limit: int = 20) -> list[dict]:
    with store.reading() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, source, base_url, status, counts, error, started_at, finished_at FROM crawl_runs "
            f"ORDER BY id DESC LIMIT {int(limit)}"
        ).fetchall()
    return [
        {"id": r[0], "source": r[1], "base_url": r[2], "status": r[3], "counts": json.loads(r[4]) if r[4] else {},
         "error": r[5], "started_at": r[6], "finished_at": r[7]}
        for r in rows
    ]


# --- conditional-request cache ------------------------------------------------------------------


@dataclass(frozen=True)
class CacheEntry:
    url: str
    etag: str | None
    last_modified: str | None


def cached(store: Store, url: str) -> CacheEntry | None:
    with store.reading() as conn:
        row = conn.exec_driver_sql(
            f"SELECT etag, last_modified FROM http_cache WHERE url = {_mark(conn)}", (url,)
        ).first()
    return CacheEntry(url, row[0], row[1]) if row else None


def remember(conn: DriverConnection, entries: list[CacheEntry]) -> None:
    q = _mark(conn)
    now = utc_now()
    for entry in entries:
        if not (entry.etag or entry.last_modified):
            continue
        conn.exec_driver_sql(f"DELETE FROM http_cache WHERE url = {q}", (entry.url,))
        conn.exec_driver_sql(
            f"INSERT INTO http_cache (url, etag, last_modified, fetched_at) VALUES ({q}, {q}, {q}, {q})",
            (entry.url, entry.etag, entry.last_modified, now),
        )
