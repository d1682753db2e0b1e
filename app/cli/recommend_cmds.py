"""Recommender commands: train, evaluate, rank."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from app.cli.arguments import (
    add_filter_arguments,
    filter_from_arguments,
    non_negative_int,
    positive_int,
    seed_list,
)
from app.cli.catalogue_cmds import emit_json, open_store
from app.cli.progress import progress_and_cancel
from recommender.errors import EXIT_INTERRUPTED, Cancelled, NoDataError, UsageError


def _train_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from recommender.training import TrainConfig

    config = TrainConfig()
    overrides = {k: getattr(args, k) for k in ("epochs", "device", "seed") if getattr(args, k, None) is not None}
    return TrainConfig(**{**config.as_dict(), **overrides})


def cmd_train(args: argparse.Namespace) -> int:
    from recommender.head_to_head import describe_choice
    from recommender.paths import nothing_to_resume
    from recommender.pipeline import train_ranker
    from recommender.ranker import user_ranker_dir

    store = open_store(args, must_exist=True)
    out = Path(args.out).expanduser() if args.out else user_ranker_dir()
    if args.resume and (note := nothing_to_resume(out)):
        print(note, file=sys.stderr)
    try:
        with progress_and_cancel("train", args.quiet) as (bar, token):
            manifest = train_ranker(store, _train_config(args), out, resume=args.resume, progress=bar, cancel=token)
    except Cancelled:
        print("training cancelled; `lensroute train --resume` continues from the last finished epoch", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = {"model_version": manifest["model_version"], "path": str(out), "data": manifest["data"],
               "validation": {k: v for k, v in manifest["validation"].items() if k != "history"},
               "training": manifest["training"], "parity": manifest["parity"]}
    if args.json:
        emit_json(summary)
    else:
        data, val = manifest["data"], manifest["validation"]
        print(f"trained ranker {manifest['model_version']} → {out}")
        print(f"  data: {data['records']:,} records, {data['groups']:,} ranking groups, {data['models']:,} models")
        print(f"  validation (new datasets): best τw {val['best_val_tau_w']:.3f} at epoch {val['best_epoch'] + 1}")
        if line := describe_choice(manifest.get("head_to_head")):
            print(f"  {line}")
        print(f"  {manifest['training']['rows_per_second']:,} rows/s, {manifest['training']['seconds']} s; "
              f"ONNX parity max |Δ| {manifest['parity']['max_abs_diff']:.2e}")
    return 0


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "  n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recommender.baselines import BASELINES
    from recommender.evaluation_log import save_reports
    from recommender.pipeline import evaluate_splits
    from recommender.splits import SPLITS

    methods = None
    if args.methods:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in methods if m != "modellens" and m not in BASELINES]
        if unknown:
            raise UsageError(f"unknown method(s) {', '.join(unknown)}; known: modellens, {', '.join(BASELINES)}")
        if args.train_seeds and "modellens" not in methods:
            raise UsageError("--train-seeds says how often to train ModelLens, which --methods leaves out")
    store = open_store(args, must_exist=True)
    splits = list(SPLITS) if args.split == "all" else [args.split]
    try:
        with progress_and_cancel(f"evaluate {args.split}", args.quiet) as (bar, token):
            run = evaluate_splits(store, splits, _train_config(args), methods=methods, train_seeds=args.train_seeds,
                                  progress=bar, cancel=token)
    except Cancelled:
        print("evaluation cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not run.reports:
        raise NoDataError("; ".join(run.skipped.values()))
    if args.json:
        if args.split == "all":
            emit_json({"schema_version": 1, "reports": [r.as_json() for r in run.reports], "skipped": run.skipped})
        else:
            emit_json({"schema_version": 1, **run.reports[0].as_json()})
    else:
        for report in run.reports:
            print_report(report)
            if args.by_task:
                print_by_task(report)
        for split, why in run.skipped.items():
            print(f"split {split}: skipped: {why}")
    _, problem = save_reports(run.reports, store.display_url)  # after printing: the tables are never lost to it
    if problem:
        print(f"lensroute: warning: {problem}", file=sys.stderr)
    return 0


def print_report(report) -> None:  # type: ignore[no-untyped-def]
    columns = ["tau_w", "ndcg@1", "ndcg@5", "ndcg@10", "ndcg@30", "hit@1", "hit@5", "hit@10", "recall@5", "recall@10", "recall@30"]
    print(f"split {report.split} (seed {report.seed}): {report.n_train_groups:,} training groups, "
          f"{report.n_test_groups:,} test groups")
    print(f"{'method':<22}" + "".join(f"{c:>10}" for c in columns) + f"{'seconds':>9}")
    for method in report.methods:
        if not method.metrics:
            print(f"{method.method:<22}  {method.note}")
            continue
        print(f"{method.method:<22}" + "".join(f"{_fmt(method.metrics.get(c, float('nan'))):>10}" for c in columns)
              + f"{method.seconds:>9.1f}")
    for method in report.methods:
        if method.metrics and method.note:
            print(f"  {method.method}: {method.note}")


# the three longest method names, shortened so the breakdown fits beside the main table's width
_SHORT = {"type-aware-mean-z": "type-aware", "matrix-factorisation": "matrix-fact", "lightgbm-lambdarank": "lambdarank"}


def print_by_task(report) -> None:  # type: ignore[no-untyped-def]
    """τ_w per task type (rows, most test groups first) and method (columns)."""
    from recommender.evaluation_log import task_breakdown

    tasks, counts, taus = task_breakdown(report.as_json())
    if not tasks:
        return
    width = max([len(t) for t in tasks] + [len("task type")]) + 2
    labels = [_SHORT.get(method, method) for method in taus]
    widths = [max(len(label), 6) + 2 for label in labels]
    print(f"\nτw by task type, split {report.split} (seed {report.seed})")
    print(f"{'task type':<{width}}{'groups':>7}" + "".join(f"{label:>{w}}" for label, w in zip(labels, widths, strict=True)))
    for row, (task, count) in enumerate(zip(tasks, counts, strict=True)):
        cells = "".join(f"{_fmt(float('nan') if column[row] is None else column[row]):>{w}}"
                        for column, w in zip(taus.values(), widths, strict=True))
        print(f"{task:<{width}}{count:>7}" + cells)


def _require_description(args: argparse.Namespace) -> None:
    if not (args.description and args.description.strip()) and not args.dataset:
        raise UsageError("describe the dataset with --description TEXT (or name a catalogued one with --dataset)")


def _print_query(lead: str, query: dict, source: str, notes: list[str]) -> None:
    """The line saying what was asked (task, metric, languages, which ranker), then the notes."""
    languages = f", languages {', '.join(query['languages'])}" if query.get("languages") else ""
    print(f"{lead} {query['task']} / {query['metric']}{languages} ({source})")
    for note in notes:
        print(f"  note: {note}")


def _rank_queries(args: argparse.Namespace) -> int:
    """`rank --queries FILE`: a JSON line per query, written as each is ranked."""
    import json

    from recommender.batch_queries import rank_queries, read_queries, stream_queries
    from recommender.ranker import Ranker, read_candidates

    if args.description or args.dataset:
        raise UsageError("--queries gives each query its description and dataset; drop --description and --dataset")
    if args.top_k < 0:  # checked once here, not answered as an error on every line
        raise UsageError("--top-k must be 0 (all) or a positive number")
    queries = stream_queries(iter(sys.stdin.readline, "")) if args.queries == "-" else read_queries(Path(args.queries).expanduser())
    constraint = filter_from_arguments(args)
    candidates = read_candidates(Path(args.candidates).expanduser()) if args.candidates else None
    ranker = Ranker.load(args.model, device=args.device)
    failed = answered = 0
    try:
        with progress_and_cancel("rank", args.quiet or args.queries == "-") as (bar, token):
            for line in rank_queries(ranker, queries, top_k=args.top_k, task=args.task, metric=args.metric,
                                     language=tuple(args.language or ()), candidates=candidates,
                                     all_models=args.all_models, constraint=constraint, progress=bar, cancel=token):
                failed, answered = failed + ("error" in line), answered + 1
                sys.stdout.write(json.dumps(line, default=str) + "\n")
                sys.stdout.flush()
    except Cancelled:
        print("lensroute: cancelled; the rankings written above are complete", file=sys.stderr)
        return EXIT_INTERRUPTED
    if failed:
        print(f"lensroute: error: {failed} of {answered} queries could not be ranked (see their \"error\")",
              file=sys.stderr)
    return 1 if failed else 0


def cmd_rank(args: argparse.Namespace) -> int:
    from recommender.measured import read_measured
    from recommender.model_filters import describe_facts
    from recommender.ranker import Ranker, read_candidates

    if args.queries:
        if args.measured:
            raise UsageError("--measured is for one dataset; in a --queries file give each query its own \"measured\" list")
        return _rank_queries(args)
    _require_description(args)
    constraint = filter_from_arguments(args)
    candidates = read_candidates(Path(args.candidates).expanduser()) if args.candidates else None
    measured = read_measured(Path(args.measured).expanduser()) if args.measured else []
    ranker = Ranker.load(args.model, device=args.device)
    ranking = ranker.rank(args.description or "", dataset=args.dataset, task=args.task, metric=args.metric,
                          top_k=args.top_k, candidates=candidates, all_models=args.all_models,
                          language=args.language or (), constraint=constraint, measured=measured)
    if args.json:
        emit_json(ranking.as_json())
        return 0
    _print_query("ranking for", ranking.query, f"ranker {ranking.model_version}, {ranking.query['candidates']:,} candidates",
                 ranking.notes)
    for result in ranking.results:
        flag = "" if result.known else "  [unseen: ranked from its metadata]"
        versus = "" if result.head_to_head is None else f"  head-to-head {result.head_to_head:.2f}"
        mine = "" if result.measured is None else f"  [measured by you: {result.measured:.4g}]"
        facts = " · ".join(describe_facts(result.n_parameters, result.licence, result.open_weights))
        print(f"{result.rank:>4}. {result.model:<60} {result.score:8.3f}{versus}{mine}{flag}" + (f"  [{facts}]" if facts else ""))
        for item in result.evidence[:2]:
            value = "n/a" if item["value"] is None else f"{item['value']:.4g}"
            print(f"        evidence: {item['dataset']} ({item['metric']} {value}, similarity {item['similarity']:.2f})")
    return 0


def _share(value: float | None, itself: bool = False) -> str:
    return "—" if itself else "n/a" if value is None else f"{value:.2f}"


def cmd_compare(args: argparse.Namespace) -> int:
    from recommender.compare import compare
    from recommender.ranker import Ranker

    _require_description(args)
    ranker = Ranker.load(args.model, device=args.device)
    result = compare(ranker, args.description or "", args.models, dataset=args.dataset, task=args.task, metric=args.metric,
                     language=args.language or (), datasets_shown=args.datasets)
    if args.json:
        emit_json(result.as_json())
        return 0
    _print_query(f"comparing {len(result.models)} models for", result.query, f"ranker {result.model_version}", result.notes)
    tags = {m["model"]: f"[{i + 1}]" for i, m in enumerate(result.models)}
    rate = {(p["model"], p["versus"]): p["win_rate"] for p in result.pairs}
    width = min(max(len(m["model"]) for m in result.models), 56)
    print(f"       {'model':<{width}} {'score':>8} {'wins':>6}   vs " + " ".join(f"{t:>5}" for t in tags.values()))
    for m in result.models:
        cells = " ".join(f"{_share(rate.get((m['model'], o)), o == m['model']):>5}" for o in tags)
        print(f"  {tags[m['model']]:<4} {m['model'][:width]:<{width}} {m['score']:8.3f} {_share(m['win_rate']):>6}      {cells}")
    met = ", ".join(f"{tags[a]}–{tags[b]} {n:,}" for a, b, n in result.meetings())
    print(f"  meetings (results groups both were measured in): {met}")
    if result.datasets:
        print(f"where they met (the {len(result.datasets)} of {result.shared_groups:,} results groups they share that count "
              "most: similar description, same task type and language; * best there):")
        label = min(max(len(f"{d['dataset']} · {d['metric']}") for d in result.datasets), 60)
        for d in result.datasets:
            measured = {k: v for k, v in d["values"].items() if v is not None}
            best = (max if d["higher_is_better"] else min)(measured, key=measured.__getitem__) if measured else None
            cells = "  ".join(f"{tags[k]} {'—' if v is None else format(v, '.4g')}{'*' if k == best else ''}"
                              for k, v in d["values"].items())
            where = f"{d['dataset']} · {d['metric']}"
            print(f"  {where[:label]:<{label}}  similarity {d['similarity']:.2f}   {cells}")
    return 0


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("train", parents=[common], help="train the ModelLens ranker on the catalogue")
    p.add_argument("--epochs", type=positive_int, help="maximum epochs (early stopping decides; default 60)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="torch device (default cpu)")
    p.add_argument("--seed", type=non_negative_int, help="random seed (default 0)")
    p.add_argument("--out", help="where to write the ranker (default: $LENSROUTE_HOME/models/ranker)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted training from its checkpoint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("evaluate", parents=[common], help="ModelLens and every baseline on one split (or all)")
    p.add_argument("--split", choices=["random", "new-dataset", "new-model", "all"], required=True,
                   help="all: every split over one prepared catalogue; the latest table of each split is kept "
                        "in $LENSROUTE_HOME/evaluations.json (the GUI shows them)")
    p.add_argument("--methods", help="comma-separated subset (default: modellens and every baseline)")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--device", choices=["cpu", "cuda"])
    p.add_argument("--seed", type=non_negative_int, help="split and training seed (default 0)")
    p.add_argument("--train-seeds", type=seed_list, metavar="SEEDS",
                   help="train ModelLens once per seed (e.g. 0-4 or 0,1,2) on the --seed split and report the "
                        "mean of the runs, each run's τw and their spread (default: the --seed alone)")
    p.add_argument("--by-task", action="store_true",
                   help="also print τw per task type and method (--json always carries each method's by_task)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("compare", parents=[common], help="compare named models head to head on datasets like yours")
    p.add_argument("models", nargs="+", metavar="MODEL", help="two or more models the catalogue has results for")
    p.add_argument("--description", help="what the dataset is: domain, language, inputs and outputs")
    p.add_argument("--dataset", help="its name (a catalogued dataset is recognised, and its own results left out)")
    p.add_argument("--task", help="task type, e.g. Retrieval, Classification, code-generation")
    p.add_argument("--metric", help="metric to rank by")
    p.add_argument("--language", action="append", metavar="LANG", help="the dataset's language(s), as for `rank`")
    p.add_argument("--datasets", type=non_negative_int, default=10, help="shared datasets to list, those that count most first (default 10)")
    p.add_argument("--model", help="ranker folder (default: the trained one, else the bundled one)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="ONNX Runtime execution provider")
    p.add_argument("--json", action="store_true",
                   help='{"query", "model_version", "models": [{"model", "rank", "score", "win_rate"}], "pairs": '
                        '[{"model", "versus", "win_rate", "meetings", "met_weight"}], "datasets": [{"dataset", "metric", "similarity", '
                        '"weight", "higher_is_better", "values"}], "shared_groups", "notes"}')
    p.set_defaults(func=cmd_compare)

    p = commands.add_parser("rank", parents=[common], help="rank models for a dataset you describe")
    p.add_argument("--description", help="what the dataset is: domain, language, inputs and outputs")
    p.add_argument("--dataset", help="its name (a catalogued dataset is recognised)")
    p.add_argument("--task", help="task type, e.g. Retrieval, Classification, code-generation")
    p.add_argument("--metric", help="metric to rank by, e.g. ndcg_at_10, accuracy, pass@1")
    p.add_argument("--language", action="append", metavar="LANG",
                   help="the dataset's language(s): a name or ISO 639 code (French, fr, fra); repeat or comma-separate. "
                        "Default: a catalogued --dataset's languages, else those the description names")
    p.add_argument("--top-k", type=int, default=10, help="how many to show; 0 = all (default 10)")
    p.add_argument("--candidates", help="CSV or JSONL of models to rank (model; optional n_parameters, family, release_date, description, licence, open_weights)")
    p.add_argument("--all-models", action="store_true",
                   help="rank every model with results, not only those evaluated on this kind of task")
    p.add_argument("--measured", metavar="FILE",
                   help="CSV or JSONL of results you already have on this dataset (model, value; in --metric): "
                        "datasets whose results agree with them count more, and the measured models are listed "
                        "in their measured order")
    add_filter_arguments(p)
    p.add_argument("--queries", metavar="FILE",
                   help='many rankings in one run: a JSONL file, a line per query {"description", "dataset"?, "task"?, '
                        '"metric"?, "language"?, "top_k"?, "id"?}; writes a JSON line per query (rank --json\'s shape '
                        'plus "line" and "id", or "error"). --task, --metric, --language and --top-k hold where a line '
                        'gives none. "-" reads standard input and answers each line as it arrives (one process, many '
                        'queries)')
    p.add_argument("--model", help="ranker folder (default: the trained one, else the bundled one)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="ONNX Runtime execution provider")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rank)
