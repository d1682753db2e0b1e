"""`lensroute show model NAME` and `lensroute show dataset NAME`: what the catalogue knows of one."""

from __future__ import annotations

import argparse
import re
import textwrap

from app.cli.arguments import non_negative_int
from app.cli.catalogue_cmds import emit_json, open_store
from recommender.errors import UsageError


def _value(value: float) -> str:
    return f"{value:.4g}"


def _short(variant: str) -> str:
    """A revision hash as git shows it; any other variant (an edit format, a scaffold) whole."""
    return variant[:10] if re.fullmatch(r"[0-9a-f]{40}", variant) else variant


def _limited(rows: list[dict], limit: int) -> tuple[list[dict], int]:
    return (rows, 0) if not limit or len(rows) <= limit else (rows[:limit], len(rows) - limit)


def cmd_show_model(args: argparse.Namespace) -> int:
    from recommender.store.lookup import model_info

    info = model_info(open_store(args, must_exist=True), args.name)
    if args.json:
        emit_json(info.as_json())
        return 0
    print(info.name)
    facts = info.facts()
    if info.downloads is not None:
        facts.append(f"{info.downloads:,} downloads")
    if facts:
        print("  " + " · ".join(facts))
    if info.aliases:
        print(f"  also known as: {', '.join(info.aliases)}")
    if info.description:
        print(textwrap.indent(textwrap.fill(info.description, 96, max_lines=4), "  "))
    sources = ", ".join(f"{name} {count:,}" for name, count in info.sources.items())
    print(f"  {len(info.records):,} records" + (f" ({sources})" if sources else ""))
    shown, hidden = _limited(info.records, args.limit)
    if shown:
        width = min(max(len(r["dataset"] + (f" [{r['subset']}]" if r["subset"] else "")) for r in shown), 48)
        print(f"  {'dataset':<{width}}  {'metric':<20} {'value':>10}  source")
        for r in shown:
            name = r["dataset"] + (f" [{r['subset']}]" if r["subset"] else "")
            print(f"  {name[:width]:<{width}}  {r['metric'][:20]:<20} {_value(r['value']):>10}  {r['source']}"
                  + (f" ({_short(r['variant'])})" if r["variant"] else ""))
    if hidden:
        print(f"  … {hidden:,} more (--limit 0 shows all, --json gives every field)")
    return 0


def cmd_show_dataset(args: argparse.Namespace) -> int:
    from recommender.store.lookup import dataset_info

    info = dataset_info(open_store(args, must_exist=True), args.name, metric=args.metric)
    if args.json:
        emit_json(info.as_json())
        return 0
    print(info.name)
    facts = [f for f in (info.task_type, f"main metric {info.main_metric}" if info.main_metric else None,
                         f"languages {', '.join(info.languages[:8])}" + (" …" if len(info.languages) > 8 else "")
                         if info.languages else None) if f]
    if facts:
        print("  " + " · ".join(facts))
    if info.description:
        print(textwrap.indent(textwrap.fill(info.description, 96, max_lines=4), "  "))
    models = len({r["model"] for r in info.records})
    print(f"  {len(info.records):,} results of {models:,} models")
    groups: dict[tuple, list[dict]] = {}
    for r in info.records:
        groups.setdefault((r["metric"], r["subset"], r["split"]), []).append(r)
    for (metric, subset, split), rows in groups.items():
        direction = {True: "higher is better", False: "lower is better", None: "direction unknown"}[rows[0]["higher_is_better"]]
        where = ", ".join(p for p in (subset, split) if p)
        print(f"  {metric}" + (f" [{where}]" if where else "") + f" ({direction}):")
        shown, hidden = _limited(rows, args.limit)
        for rank, r in enumerate(shown, start=1):
            print(f"    {rank:>4}. {r['model'][:60]:<60} {_value(r['value']):>10}  {r['source']}")
        if hidden:
            print(f"    … {hidden:,} more (--limit 0 shows all)")
    return 0


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    show = commands.add_parser("show", parents=[common], help="what the catalogue knows of one model or dataset")
    sub = show.add_subparsers(dest="show_command", metavar="WHAT")
    p = sub.add_parser("model", parents=[common], help="a model's metadata and every result it has")
    p.add_argument("name", help="any spelling the catalogue resolves: case, org/ prefix, @revision")
    p.add_argument("--limit", type=non_negative_int, default=40, help="results to print; 0 = all (default 40)")
    p.add_argument("--json", action="store_true",
                   help='{"model": {"name", "family", "n_parameters", "release_date", "licence", "open_weights", '
                        '"downloads", "description"}, "aliases", "sources", "records": [{"dataset", "task", "metric", '
                        '"value", "higher_is_better", "split", "subset", "variant", "source", "source_ref", "evaluated_at"}]}')
    p.set_defaults(func=cmd_show_model)
    p = sub.add_parser("dataset", parents=[common], help="a dataset's metadata and its models, best first")
    p.add_argument("name")
    p.add_argument("--metric", help="only this metric")
    p.add_argument("--limit", type=non_negative_int, default=20, help="models to print per metric; 0 = all (default 20)")
    p.add_argument("--json", action="store_true",
                   help='{"dataset": {"name", "task_type", "main_metric", "description", "languages"}, "sources", '
                        '"records": [{"model", "task", "metric", "value", …}] best first per metric}')
    p.set_defaults(func=cmd_show_dataset)

    def missing_what(args: argparse.Namespace) -> int:
        raise UsageError("show what? `lensroute show model NAME` or `lensroute show dataset NAME`")

    show.set_defaults(func=missing_what)
