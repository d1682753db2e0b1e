"""`import` end to end: expand paths, detect formats, parse, and write each unit atomically.

A unit is what an importer yields: one file, or one natural piece of a tree (an MTEB model
folder, an EEE board). Each unit is written in its own transaction, so a failing unit is rolled
back whole and named with its reason while the others still import; a cancel stops between
units (or between chunks of a large unit, rolling that unit back).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from recommender import importers, paths, unchanged_files
from recommender.errors import Cancelled, LensrouteError, NotFoundError
from recommender.import_report import ImportReport, Rejected, UnitResult, WriteCounts
from recommender.importers.base import Format, ImportContext, ParsedFile
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, no_progress
from recommender.records import conform
from recommender.store import Store
from recommender.store.queries import source_generations
from recommender.store.writer import (
    _mark,
    record_digest,
    utc_now,
    write_dataset_metadata,
    write_model_metadata,
    write_records,
)

if TYPE_CHECKING:
    from recommender.store.driver import DriverConnection

CHUNK_ROWS = 100_000  # rows per write call: bounds memory of the id joins and executemany lists


@dataclass(frozen=True)
class _Planned:
    path: Path
    fmt: Format | None
    error: str | None = None
    origin: Path | None = None  # the command-line path this one was found under


def plan(
    targets: Sequence[Path], forced: str | None = None, origin: Path | None = None,
    _seen: set[Path] | None = None,
) -> tuple[list[_Planned], list[str]]:
    """Expand command-line paths into (path, format) pairs; unknown files inside folders are
    skipped (listed), an unknown file named explicitly is an error. Every real file and folder
    is visited once, however many links lead to it (a link back up the tree would otherwise
    import the same files again at every level)."""
    planned: list[_Planned] = []
    skipped: list[str] = []
    seen = set() if _seen is None else _seen
    forced_format = importers.get_format(forced) if forced else None
    for target in targets:
        top = origin or target
        if not target.exists():
            planned.append(_Planned(target, None, f"no such file or folder: {target}", top))
            continue
        real = target.resolve()
        if real in seen:
            continue
        seen.add(real)
        if forced_format is not None:
            planned.append(_Planned(target, forced_format, origin=top))
            continue
        fmt = importers.detect(target)
        if fmt is not None:
            planned.append(_Planned(target, fmt, origin=top))
        elif target.is_dir():
            inner, inner_skipped = plan(sorted(target.iterdir()), origin=top, _seen=seen)
            planned.extend(p for p in inner if p.error is None)
            skipped.extend(inner_skipped)
            skipped.extend(str(p.path) for p in inner if p.error is not None)
        else:
            planned.append(_Planned(
                target, None,
                f"cannot tell the format of {target.name}; pass --format (one of: {', '.join(importers.format_names())})",
                top,
            ))
    return planned, skipped


def load_task_catalogue(store: Store, context: ImportContext) -> None:
    """MTEB task metadata (type, main score, eval splits) for the MTEB importer.

    The bundled seed's task list is the base; task metadata imported into the store overrides
    it, and datasets the store knows only from records add their task type.
    """
    if context.mteb_tasks:
        return
    seed_tasks = paths.resources_dir() / "seed" / "datasets.jsonl.gz"
    if seed_tasks.exists():
        importers.meta._parse_tasks(seed_tasks, context)
    with store.reading() as conn:
        rows = conn.exec_driver_sql(
            "SELECT name, task_type, main_metric, extra FROM datasets WHERE task_type IS NOT NULL"
        ).fetchall()
    for name, task_type, main_metric, extra in rows:
        if main_metric is None and name in context.mteb_tasks:
            continue
        splits = (json.loads(extra) if extra else {}).get("eval_splits") or []
        context.mteb_tasks[name] = {"type": task_type, "main_score": main_metric, "eval_splits": splits}


def unit_digest(records: pl.DataFrame, parsed: ParsedFile) -> str:
    """A content fingerprint of a conformed unit (row order does not matter).

    polars' row hash is not promised stable across polars versions; a changed hash only makes
    the next import take the full comparison path, never a wrong shortcut.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(records.schema.names()).encode())
    if records.height:
        # wrapping UInt64 sums of row hashes under three seeds: order-independent, numpy-free
        sums = [int(records.hash_rows(seed=seed).sum()) for seed in (0, 1, 2)]
        digest.update(f"{records.height}:{sums}".encode())
    digest.update(json.dumps([parsed.models, parsed.datasets], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def write_parsed(
    store: Store,
    parsed: ParsedFile,
    *,
    crawled_at: str,
    default_source: str,
    cancel: CancelToken,
    unit: str | None = None,
    before_commit: Callable[[DriverConnection, WriteCounts], None] | None = None,
    on_rows: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> WriteCounts:
    """Write one unit in one transaction (metadata first, then records in chunks; `on_rows`
    hears (rows written, rows in the unit) after each chunk, so a big file shows progress).

    With `unit` given, an import whose content digest matches the last import of that unit,
    while none of its sources was written since, is answered from the digest without
    comparing row by row: that is what makes an unchanged re-import cheap. `before_commit`
    runs inside the same transaction (a crawl saves its cursor there, so the cursor never
    runs ahead of, or behind, what is stored). `force` compares row by row whatever the digest
    says (and records the digest afresh).
    """
    counts = WriteCounts()
    counts.rejected.merge(parsed.rejected)
    records = conform(parsed.records, default_source=default_source, rejected=counts.rejected)
    digest = unit_digest(records, parsed) if unit else None
    sources = records["source"].unique().to_list()
    with store.writing() as conn:
        if unit and digest and not force:
            cached = conn.exec_driver_sql(
                f"SELECT digest, generations, counts FROM import_digests WHERE unit = {_mark(conn)}", (unit,)
            ).first()
            if cached and cached[0] == digest and json.loads(cached[1]) == source_generations(conn, sources):
                previous = json.loads(cached[2])
                counts.unchanged = previous["rows"]
                counts.rejected.merge(Rejected(previous["rejected_in_write"]))
                if before_commit is not None:
                    before_commit(conn, counts)
                return counts
        write_dataset_metadata(conn, parsed.datasets, counts)
        write_model_metadata(conn, parsed.models, counts)
        in_write = Rejected()
        written = 0
        for chunk in records.iter_slices(CHUNK_ROWS):
            cancel.raise_if_cancelled()
            chunk_counts = write_records(conn, chunk, crawled_at=crawled_at)
            in_write.merge(chunk_counts.rejected)
            counts.merge(chunk_counts)
            written += chunk.height
            if on_rows is not None:
                on_rows(written, records.height)
        if unit and digest:
            summary = {"rows": counts.added + counts.updated + counts.unchanged, "rejected_in_write": in_write.reasons}
            record_digest(conn, unit, digest, json.dumps(source_generations(conn, sources)), json.dumps(summary), crawled_at)
        if before_commit is not None:
            before_commit(conn, counts)
    return counts


def _units(item: _Planned, context: ImportContext) -> Iterator[tuple[str, ParsedFile]]:
    assert item.fmt is not None
    yield from item.fmt.parse(item.path, context)


def import_paths(
    store: Store,
    targets: Sequence[str | Path],
    *,
    fmt: str | None = None,
    source: str | None = None,
    force: bool = False,
    checked: unchanged_files.Check | None = None,
    progress: Progress = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> ImportReport:
    """Import every target; a target whose files are byte for byte what an earlier import of it
    read, into sources nobody wrote since, is answered without parsing (`unchanged_files`).
    `force` reads and compares everything again (after a hand edit of the database, say).
    `checked` is that check when the caller already made it for these targets (the CLI makes it
    before loading the data libraries), so files are not hashed twice."""
    paths_given = [Path(t).expanduser() for t in targets]
    forced = importers.get_format(fmt).name if fmt else None
    if checked is None:
        checked = unchanged_files.check(store, paths_given, forced, source, look_up=not force)
    report = checked.report()
    snapshots = checked.snapshots
    remaining = [t for t in paths_given if t not in checked.answered]
    if not remaining:
        progress(1, 1, "done")
        return report
    planned, skipped = plan(remaining, fmt)
    report.skipped.extend(skipped)
    if not planned and not skipped and not report.units:
        raise NotFoundError("nothing to import")
    context = ImportContext(source=source)
    crawled_at = utc_now()
    total = len(planned)
    outcome: dict[Path, list[tuple[_Planned, UnitResult]]] = {t: [] for t in remaining}
    for index, item in enumerate(planned):
        if cancel.cancelled:
            report.cancelled = True
            break
        progress(index, total, item.path.name)
        if item.error is not None:
            result = UnitResult(str(item.path), "?", str(item.path), error=item.error)
            report.units.append(result)
            outcome[item.origin or item.path].append((item, result))
            continue
        assert item.fmt is not None
        if item.fmt.name.startswith(("mteb", "seed")):
            load_task_catalogue(store, context)
        units = _units(item, context)
        n_units = _count_units(item)
        for k in itertools.count():
            started = time.perf_counter()
            result = UnitResult(str(item.path), item.fmt.name, str(item.path))
            try:
                label, parsed = next(units)
                result.label = label
                on_rows = _unit_progress(progress, index + min(k, n_units - 1) / n_units, 1 / n_units, total,
                                         Path(label).name)
                on_rows(0, 1)
                result.counts = write_parsed(
                    store, parsed, crawled_at=crawled_at, default_source=source or item.fmt.name,
                    cancel=cancel, unit=unchanged_files.unit_key(item.fmt.name, label, source), on_rows=on_rows,
                    force=force,
                )
            except StopIteration:
                break
            except Cancelled:
                report.cancelled = True
                break
            except LensrouteError as exc:
                result.error = str(exc)
            except (pl.exceptions.PolarsError, OSError, ValueError, KeyError, TypeError) as exc:
                result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            result.seconds = time.perf_counter() - started
            report.units.append(result)  # a generator that raised is finished: next() stops
            outcome[item.origin or item.path].append((item, result))
        if report.cancelled:
            break
    if not report.cancelled:
        _remember_targets(store, outcome, snapshots, skipped, forced, source, crawled_at)
    progress(total, total, "done")
    return report


def _count_units(item: _Planned) -> int:
    """Units the item's parse will yield, for progress only: a listing that fails counts one."""
    assert item.fmt is not None
    if item.fmt.count_units is None:
        return 1
    try:
        return max(1, item.fmt.count_units(item.path))
    except OSError:
        return 1


def _unit_progress(
    progress: Progress, start: float, share: float, total: int, name: str
) -> Callable[[int, int], None]:
    """Progress within one unit: it covers [start, start + share) of the planned items."""

    def on_rows(written: int, rows: int) -> None:
        progress(start + share * min(written / max(rows, 1), 1.0), total, name)

    return on_rows


def _remember_targets(
    store: Store,
    outcome: dict[Path, list[tuple[_Planned, UnitResult]]],
    snapshots: dict[Path, dict[str, str] | None],
    skipped: list[str],
    forced: str | None,
    source: str | None,
    when: str,
) -> None:
    """Remember each target whose units all succeeded and were single files, so that importing
    it again unchanged needs no parsing; forget any other (its earlier answer is stale)."""
    for target, results in outcome.items():
        files = snapshots.get(target)
        eligible = (
            files is not None and results
            and all(item.fmt is not None and not item.fmt.is_tree and result.ok and result.label == str(item.path)
                    for item, result in results)
        )
        if not eligible:
            unchanged_files.forget(store, target, forced, source)
            continue
        assert files is not None
        units = [
            unchanged_files.RememberedUnit(
                label=result.label, format=result.format, unit=unchanged_files.unit_key(result.format, result.label, source),
                rows=result.counts.added + result.counts.updated + result.counts.unchanged,
                rejected=dict(result.counts.rejected.reasons),
            )
            for _item, result in results
        ]
        inside = [s for s in skipped if target.is_dir() and Path(s).is_relative_to(target)]
        unchanged_files.remember(store, target, forced, source, files, units, inside, when)
