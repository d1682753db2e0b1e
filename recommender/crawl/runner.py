"""`lensroute crawl SOURCE`: run an adapter, write each unit atomically with its cursor.

Start → cancel → restart is one code path: a cancelled or failed run keeps its cursor, and the
next crawl of the same source and base URL resumes it. Nothing committed is ever lost; the unit
in flight when a crash or Ctrl-C happens is rolled back whole and fetched again next time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from recommender.crawl import state
from recommender.crawl.adapters import ADAPTERS, CrawlContext
from recommender.crawl.http import PoliteClient, Politeness
from recommender.errors import Cancelled, CrawlError, LensrouteError, UsageError
from recommender.importers.base import ImportContext
from recommender.ingest import load_task_catalogue, write_parsed
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, no_progress
from recommender.store import Store
from recommender.store.writer import WriteCounts, utc_now

if TYPE_CHECKING:
    from recommender.store.driver import DriverConnection


@dataclass
class CrawlReport:
    source: str
    base_url: str
    run_id: int
    resumed: bool
    status: str = "running"
    error: str | None = None
    units: int = 0
    not_modified: int = 0
    requests: int = 0
    retries: int = 0
    counts: WriteCounts = field(default_factory=WriteCounts)

    def as_json(self) -> dict[str, object]:
        return {"source": self.source, "base_url": self.base_url, "run_id": self.run_id, "resumed": self.resumed,
                "status": self.status, "error": self.error, "units": self.units, "not_modified": self.not_modified,
                "requests": self.requests, "retries": self.retries, **self.counts.as_dict()}


def source_names() -> list[str]:
    return sorted(ADAPTERS)


def crawl(
    store: Store,
    source: str,
    *,
    base_url: str | None = None,
    options: dict[str, object] | None = None,
    restart: bool = False,
    politeness: Politeness | None = None,
    transport: httpx.BaseTransport | None = None,
    progress: Progress = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> CrawlReport:
    if source not in ADAPTERS:
        raise UsageError(f"unknown source {source!r}; known: {', '.join(source_names())}")
    adapter = ADAPTERS[source]
    base = (base_url or adapter.default_base_url).rstrip("/")
    run = state.start_or_resume(store, adapter.name, base, restart=restart)
    report = CrawlReport(adapter.name, base, run.id, run.resumed)
    imports = ImportContext()
    load_task_catalogue(store, imports)
    crawled_at = utc_now()
    with PoliteClient(politeness, cancel=cancel, transport=transport) as client:
        ctx = CrawlContext(store, client, base, dict(options or {}), imports)
        try:
            for unit in adapter.units(ctx, run.cursor):
                cancel.raise_if_cancelled()
                report.units += 1
                report.not_modified += unit.not_modified
                run.cursor = unit.cursor

                def keep_state(conn: DriverConnection, counts: WriteCounts, unit=unit) -> None:
                    report.counts.merge(counts)
                    run.counts = {**report.counts.as_dict(), "requests": client.requests, "not_modified": report.not_modified}
                    state.save_progress(conn, run)
                    state.remember(conn, unit.cache)

                if unit.parsed is not None:
                    write_parsed(store, unit.parsed, crawled_at=crawled_at, default_source=adapter.name,
                                 cancel=cancel, before_commit=keep_state)
                else:
                    with store.writing() as conn:
                        keep_state(conn, WriteCounts())
                progress(report.units, None, unit.label)
            report.status = "done"
        except Cancelled:
            report.status = "cancelled"
        except (CrawlError, UsageError) as exc:
            report.status, report.error = "failed", str(exc)
        except LensrouteError as exc:
            report.status, report.error = "failed", str(exc)
        finally:
            report.requests, report.retries = client.requests, client.retries
            run.counts = {**report.counts.as_dict(), "requests": client.requests, "not_modified": report.not_modified}
            state.finish(store, run, report.status if report.status != "running" else "failed", report.error)
    return report
