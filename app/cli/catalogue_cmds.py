"""Catalogue commands: init, import, export, stats (crawl lives in crawl_cmds).

Heavy modules (polars, the importers) are imported inside the commands that need them, so
`lensroute stats` and `--help` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.progress import progress_and_cancel
from recommender import paths
from recommender.errors import (
    EXIT_INTERRUPTED,
    LensrouteError,
    NoDataError,
    NotFoundError,
    UsageError,
)
from recommender.interchange import EXPORT_FORMATS

if TYPE_CHECKING:
    from recommender.import_report import ImportReport, UnitResult, WriteCounts
    from recommender.store import Store


SCHEMA_VERSION = 1


def open_store(args: argparse.Namespace, *, must_exist: bool = False) -> Store:
    """Commands that only read pass `must_exist`: a mistyped `--db` path used to leave a new,
    empty catalogue behind and report zeros as if that were the answer."""
    from recommender.store import Store  # SQLAlchemy: only for commands that open the catalogue

    missing = missing_catalogue(args) if must_exist else None
    if missing is not None:
        raise NoDataError(f"no catalogue at {missing}: create it with `lensroute init{_db_option(args)}` "
                          f"(the bundled seed) or fill it with `lensroute import{_db_option(args)} PATH`")
    return Store.open(args.db)


def missing_catalogue(args: argparse.Namespace) -> Path | None:
    """The SQLite file the command would open, when it does not exist yet (None otherwise)."""
    from recommender.store.engine import sqlite_path

    path = sqlite_path(paths.database_url(args.db))
    return path if path is not None and not path.exists() else None


def _db_option(args: argparse.Namespace) -> str:
    return f" --db {args.db}" if args.db else ""


def emit_json(payload: dict | list) -> None:
    json.dump(payload, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


# --- import ---------------------------------------------------------------------------------------


def _counts_line(counts: WriteCounts) -> str:
    line = f"added {counts.added:,}, updated {counts.updated:,}, unchanged {counts.unchanged:,}, rejected {counts.rejected.total:,}"
    if counts.rejected.reasons:
        line += f" ({counts.rejected.describe()})"
    return line


def _by_target(report: ImportReport) -> dict[str, list[UnitResult]]:
    grouped: dict[str, list[UnitResult]] = defaultdict(list)
    for unit in report.units:
        grouped[unit.target or unit.label].append(unit)
    return grouped


def print_import_report(report: ImportReport) -> None:
    from recommender.import_report import WriteCounts

    for target, units in _by_target(report).items():
        fmt = units[0].format
        ok = [u for u in units if u.ok]
        total = WriteCounts()
        for unit in ok:
            total.merge(unit.counts)
        if ok:
            parts = f" ({len(ok)} units)" if len(units) > 1 else ""
            unread = " (same bytes as its last import: not read again)" if all(u.not_read for u in ok) else ""
            print(f"{target} [{fmt}]{parts}: {_counts_line(total)}{unread}")
        for unit in units:
            if not unit.ok:
                print(f"{unit.label}: FAILED, nothing from it was stored: {unit.error}")
    if report.skipped:
        print(f"skipped {len(report.skipped)} file(s) of no known format")
    totals = report.totals()
    print(f"total: {_counts_line(totals)}; {len(report.failed)} failed")
    if report.cancelled:
        print("cancelled: units written before the cancel are kept; run the import again to finish")


def import_report_json(report: ImportReport) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "files": [
            {"path": u.label, "target": u.target, "format": u.format, **u.counts.as_dict(), "error": u.error,
             "seconds": round(u.seconds, 3), "not_read": u.not_read}
            for u in report.units
        ],
        "skipped": report.skipped,
        "totals": report.totals().as_dict(),
        "failed": len(report.failed),
        "cancelled": report.cancelled,
    }


def cmd_import(args: argparse.Namespace) -> int:
    if args.list_formats:
        from recommender import importers

        for fmt in importers.FORMATS:
            print(f"{fmt.name:<20} {fmt.description}")
        return 0
    if not args.paths:
        raise UsageError("import needs at least one PATH (or --list-formats)")
    forced = None
    if args.format:
        from recommender import importers

        forced = importers.get_format(args.format).name  # unknown → usage error before anything is opened
    store = open_store(args)
    # Files unchanged since their last import are answered from the store before the data
    # libraries are even loaded (see recommender.unchanged_files).
    targets = [Path(p).expanduser() for p in args.paths]
    from recommender import unchanged_files

    checked = unchanged_files.check(store, targets, forced, args.source, look_up=not args.force)
    if checked.complete:
        report = checked.report()
    else:
        from recommender.ingest import import_paths

        with progress_and_cancel("import", args.quiet) as (bar, token):
            report = import_paths(store, targets, fmt=args.format, source=args.source, force=args.force,
                                  checked=checked, progress=bar, cancel=token)
    if args.json:
        emit_json(import_report_json(report))
    else:
        print_import_report(report)
    if report.cancelled:
        return EXIT_INTERRUPTED
    return 1 if report.failed else 0


# --- init -----------------------------------------------------------------------------------------


def seed_dir() -> Path:
    return paths.resources_dir() / "seed"


def ensure_seeded(store: Store, quiet: bool = True) -> ImportReport | None:
    """Load the bundled seed catalogue into an empty store (so a fresh install works offline)."""
    from recommender.store.queries import catalogue_stats

    if catalogue_stats(store).records:
        return None
    if not (seed_dir() / "manifest.json").exists():
        raise NotFoundError(f"the bundled seed catalogue is missing ({seed_dir()}); reinstall lensroute")
    from recommender.ingest import import_paths

    with progress_and_cancel("seed", quiet) as (bar, token):
        return import_paths(store, [seed_dir()], progress=bar, cancel=token)


def cmd_init(args: argparse.Namespace) -> int:
    from recommender.store.queries import catalogue_stats

    store = open_store(args)
    report = ensure_seeded(store, args.quiet)
    stats = catalogue_stats(store)
    if report is None:
        print(f"{store.display_url}: already holds {stats.records:,} records; nothing to do", file=sys.stderr)
    else:
        print(f"{store.display_url}: loaded the seed catalogue ({stats.records:,} records, "
              f"{stats.models:,} models, {stats.datasets:,} datasets)", file=sys.stderr)
    if args.json:
        emit_json({"schema_version": SCHEMA_VERSION, "database": store.display_url, **stats.as_json()})
    return 0


# --- stats / export -------------------------------------------------------------------------------


def cmd_stats(args: argparse.Namespace) -> int:
    from recommender.store.queries import catalogue_stats

    store = open_store(args, must_exist=True)
    stats = catalogue_stats(store)
    if args.json:
        emit_json(stats.as_json())
        return 0
    print(f"database: {store.display_url} (schema v{stats.schema_version})")
    print(f"records:  {stats.records:,}")
    print(f"models:   {stats.models:,}")
    print(f"datasets: {stats.datasets:,}")
    print(f"metrics:  {stats.metrics:,}")
    for name, count in stats.sources.items():
        print(f"  {name:<24} {count:>10,}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from recommender.store.export import export_format_for, export_records

    export_format_for(Path(args.path), args.format)  # a bad name is a usage error before any work
    store = open_store(args, must_exist=True)
    path = Path(args.path).expanduser()
    count = export_records(store, path, args.format, args.source or None)
    if args.json:
        emit_json({"schema_version": SCHEMA_VERSION, "path": str(path), "records": count})
    else:
        print(f"wrote {count:,} records to {path}")
    return 0


# --- delete ---------------------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def cmd_delete(args: argparse.Namespace) -> int:
    from recommender.store.removal import remove_records

    store = open_store(args, must_exist=True)
    planned = remove_records(store, args.source, args.model, dry_run=True)
    whose = f"model {planned.model!r} from " if planned.model else ""
    what = (f"{_count(planned.records, 'record')} of {whose}source {planned.source!r} ({_count(planned.models, 'model')}, "
            f"{_count(planned.datasets, 'dataset')}; {_count(planned.history, 'superseded value')} kept for them)")
    if not args.dry_run and not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"this would delete {what}; pass --yes to delete without asking (--dry-run only counts)")
        print(f"delete {what}? [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    done = planned if args.dry_run else remove_records(store, args.source, args.model)
    if args.json:
        emit_json(done.as_json())
    elif args.dry_run:
        print(f"would delete {what}; nothing changed (--dry-run)")
    else:
        print(f"deleted {what}; `lensroute train` makes rankings forget them")
    return 0


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("init", parents=[common], help="create the catalogue and load the bundled seed")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_init)

    p = commands.add_parser(
        "import", parents=[common], help="import leaderboard files or folders",
        description="Import records; the format of each file or folder is detected (see --list-formats).",
    )
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--format", help="skip detection and read every PATH as this format (see --list-formats)")
    p.add_argument("--list-formats", action="store_true", help="list the formats lensroute reads")
    p.add_argument("--source", help="source name to record (default: per format, e.g. mteb, aider)")
    p.add_argument("--force", action="store_true",
                   help="read and compare every row again, even of files unchanged since their last import")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=cmd_import)

    p = commands.add_parser("stats", parents=[common], help="what the catalogue holds")
    p.add_argument("--json", action="store_true", help='{"models", "datasets", "metrics", "records", "sources"}')
    p.set_defaults(func=cmd_stats)

    p = commands.add_parser("export", parents=[common], help="write records in the unified schema")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--format", choices=EXPORT_FORMATS, help="default: from the file extension")
    p.add_argument("--source", action="append", help="only this source (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)

    p = commands.add_parser(
        "delete", parents=[common], help="delete a source's records (or one model's) from the catalogue",
        description="Undo a wrong import: delete every record of a source, or only one model's, with the superseded "
                    "values kept for them. Models and datasets stay; re-importing the same file puts the records back.")
    p.add_argument("--source", required=True, help="the source whose records go (see `lensroute stats`)")
    p.add_argument("--model", help="only this model's records from the source")
    p.add_argument("--dry-run", action="store_true", help="count what would go and change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask (needed when not on a terminal)")
    p.add_argument("--json", action="store_true",
                   help='{"source", "model", "records", "history", "models", "datasets", "applied"}')
    p.set_defaults(func=cmd_delete)


__all__ = ["LensrouteError", "ensure_seeded", "open_store", "register"]
