"""`lensroute crawl SOURCE`: fetch a live leaderboard politely, resumably, incrementally."""

from __future__ import annotations

import argparse
import sys

from app.cli.arguments import positive_int
from app.cli.catalogue_cmds import emit_json, missing_catalogue, open_store
from app.cli.progress import progress_and_cancel
from recommender.errors import EXIT_INTERRUPTED


def cmd_crawl(args: argparse.Namespace) -> int:
    if args.list or not args.source:
        return list_sources(args)
    from recommender.crawl.runner import crawl, source_names

    if args.source not in source_names():
        from recommender.errors import UsageError

        raise UsageError(f"unknown source {args.source!r}; known: {', '.join(source_names())}")
    store = open_store(args)
    options = {k: getattr(args, k) for k in ("limit", "search", "author", "filter", "release", "page_size") if getattr(args, k)}
    with progress_and_cancel(f"crawl {args.source}", args.quiet) as (bar, token):
        report = crawl(store, args.source, base_url=args.base_url, options=options, restart=args.restart,
                       progress=bar, cancel=token)
    if args.json:
        emit_json(report.as_json())
    else:
        counts = report.counts
        resumed = " (resumed)" if report.resumed else ""
        print(f"{report.source} from {report.base_url}{resumed}: {report.status}; {report.units} units, "
              f"added {counts.added:,}, updated {counts.updated:,}, unchanged {counts.unchanged:,}, "
              f"rejected {counts.rejected.total:,}; {report.requests} requests ({report.retries} retried, "
              f"{report.not_modified} not modified)")
    if report.status == "cancelled":
        print("cancelled: what was fetched is stored; run the same crawl again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    if report.status == "failed":
        print(f"lensroute: error: {report.error} (stored records are kept; the next crawl resumes)", file=sys.stderr)
        return 1
    return 0


def list_sources(args: argparse.Namespace) -> int:
    from recommender.crawl.adapters import ADAPTERS
    from recommender.crawl.runner import source_names
    from recommender.crawl.state import recent_runs

    runs = [] if missing_catalogue(args) else recent_runs(open_store(args))  # listing creates no catalogue
    last = {}
    for run in runs:
        last.setdefault(run["source"], run)
    if args.json:
        emit_json({"sources": [{"name": name, "description": ADAPTERS[name].description,
                                "default_base_url": ADAPTERS[name].default_base_url, "last_run": last.get(name)}
                               for name in source_names()]})
        return 0
    for name in source_names():
        run = last.get(name)
        state = f"last run {run['status']} at {run['finished_at'] or run['started_at']}" if run else "never crawled"
        if run and run["status"] == "failed" and run.get("error"):
            state += f": {run['error']}"  # why, so the fix is in sight (a typo'd --base-url, no network, …)
        print(f"{name:<22} {ADAPTERS[name].description} [{state}]")
    return 0


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("crawl", parents=[common], help="fetch a live leaderboard (resumable, polite)",
                            description="Fetch a live leaderboard; `lensroute crawl --list` names the sources.")
    p.add_argument("source", nargs="?", metavar="SOURCE")
    p.add_argument("--list", action="store_true", help="list the sources and their last crawl")
    p.add_argument("--base-url", help="fetch from this mirror or test server instead of the source's own site")
    p.add_argument("--restart", action="store_true", help="ignore an unfinished run's cursor and start over")
    p.add_argument("--limit", type=positive_int, help="hf-hub: stop after this many models")
    p.add_argument("--page-size", type=positive_int, help="hf-hub: models per listing page (default 100)")
    p.add_argument("--search", help="hf-hub: only models matching this text")
    p.add_argument("--author", help="hf-hub: only models of this author")
    p.add_argument("--filter", help="hf-hub: only models with this tag (e.g. sentence-similarity)")
    p.add_argument("--release", help="livebench: release date as in table_<YYYY_MM_DD>.csv")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_crawl)
