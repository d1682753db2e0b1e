"""Routing commands: `lensroute pool` and `lensroute route evaluate | calibrate | list | chat | answer | batch`."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from app.cli.arguments import (
    add_filter_arguments,
    add_sampling_arguments,
    filter_from_arguments,
    non_negative_float,
    non_negative_int,
    positive_int,
    sampling_from_arguments,
)
from app.cli.catalogue_cmds import emit_json, open_store
from app.cli.progress import progress_and_cancel
from recommender.errors import EXIT_INTERRUPTED, Cancelled, NotFoundError, UsageError

ROUTER_CHOICES = ("all", "knn", "mlp", "lgbm", "cluster")


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)


# --- pool ---------------------------------------------------------------------------------------


def cmd_pool(args: argparse.Namespace) -> int:
    from routing.pool import recommend_pool

    if args.top_k < 1:
        raise UsageError("--top-k must be at least 1")
    if not args.description.strip():
        raise UsageError("--description is empty: describe the task")
    from recommender.ranker import Ranker

    ranker = Ranker.load(args.model) if args.model else None
    result = recommend_pool(args.description, args.top_k, task=args.task, metric=args.metric, ranker=ranker,
                            language=args.language or (), constraint=filter_from_arguments(args))
    if args.json:
        emit_json(result)
        return 0
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(f"recommended Top-{args.top_k}:")
    for r in result["recommended"]:
        where = f"runs here as {r['local_name']}" if r["runnable"] else "not installed"
        print(f"  {r['rank']:>3}. {r['model']:<56} {r['score']:>9.4f}  {where}")
    if result["pool"]:
        print("pool of installed models, by the same ranker:")
        for p in result["pool"]:
            print(f"  {p['rank']:>3}. {p['local_name']:<28} {p['kind']:<10} {p['score']:>9.4f}  answers {p['answers']}")
        which = "the recommended models that run here" if result["runnable"] else "this pool"
        print(f"route over {which}: {result['calibrate_command']}")
    return 0


# --- evaluate -----------------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recommender.text_encoder import default_encoder
    from routing.costs import default_prices
    from routing.evaluate import evaluate_table, order_rows
    from routing.routers import ROUTERS
    from routing.table import load_table

    routers = list(ROUTERS) if args.router == "all" else [args.router]
    prices = Path(args.prices) if args.prices else None
    if prices is not None and not prices.is_file():
        raise UsageError(f"--prices: no such file: {prices}")
    table = load_table(args.table, seed=args.seed,
                       price_lookup=(lambda models: default_prices(models, prices)) if prices else None)
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    encoder = default_encoder()
    try:
        with progress_and_cancel("route evaluate", args.quiet) as (bar, token):
            x = encoder.encode_all(table.prompts, progress=bar, cancel=token)
            rows = order_rows(evaluate_table(table, lambda _: x, routers, seed=args.seed, progress=bar, cancel=token))
    except Cancelled:
        print("evaluation cancelled (embeddings computed so far are cached)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        emit_json([r.as_json() for r in rows])
        return 0
    summary = table.summary()
    print(f"{table.name}: {summary['queries']:,} queries ({summary['train']:,} train, {summary['test']:,} test), "
          f"{len(table.models)} models, cost basis {table.cost_basis}")
    print(f"{'benchmark':<28}{'router':<13}{'accuracy':>9}{'cost':>12}{'auc':>8}{'gap':>8}{'queries':>9}")
    for r in rows:
        print(f"{r.benchmark[:27]:<28}{r.router:<13}{r.accuracy:>9.4f}{r.cost:>12.4g}{r.auc:>8.4f}"
              f"{_fmt(r.gap_closed, '.3f'):>8}{r.queries:>9}")
    return 0


def cmd_pool_experiment(args: argparse.Namespace) -> int:
    from recommender.ranker import Ranker
    from recommender.text_encoder import default_encoder
    from routing.pool_experiment import pool_experiment
    from routing.table import load_table

    table = load_table(args.table, seed=args.seed)
    if not 1 <= args.top_k < len(table.models):
        raise UsageError(f"--top-k must be between 1 and {len(table.models) - 1} (the table has {len(table.models)} models)")
    ranker = Ranker.load(args.model)
    try:
        with progress_and_cancel("route pool-experiment", args.quiet) as (bar, token):
            x = default_encoder().encode_all(table.prompts, progress=bar, cancel=token)
            rows = pool_experiment(table, x, ranker, args.top_k, kind=args.router, random_draws=args.draws,
                                   seed=args.seed, store=open_store(args), progress=bar, cancel=token)
    except Cancelled:
        print("experiment cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        emit_json([r.as_json() for r in rows])
        return 0
    print(f"{table.name}: routed accuracy ({args.router}, λ = 0) with the pool restricted to K = {args.top_k} models")
    print(f"{'benchmark':<24}{'recommended':>12}{'random':>9}{'all':>9}{'queries':>9}   recommended pool")
    for bench in dict.fromkeys(r.benchmark for r in rows):
        mine = {r.pool: r for r in rows if r.benchmark == bench}
        print(f"{bench[:23]:<24}{mine['recommended'].accuracy:>12.4f}{mine['random'].accuracy:>9.4f}"
              f"{mine['all'].accuracy:>9.4f}{mine['all'].queries:>9}   {', '.join(mine['recommended'].models)}")
    return 0


# --- calibrate ----------------------------------------------------------------------------------


def _pool_names(values: list[str]) -> list[str]:
    return [name for value in values for name in value.split(",")]


def _default_pool() -> list[str]:
    """Every installed local model: what a first `route calibrate` with no --pool routes over."""
    from routing.local_models import installed

    names = [model.name for model in installed()]
    if not names:
        raise NotFoundError("no local models are installed to make a pool of: run `lensroute models build-builtin` "
                            "(or `lensroute models add FOLDER`), or name them with --pool")
    return names


def cmd_calibrate(args: argparse.Namespace) -> int:
    from routing.answering import bundled_questions, read_questions
    from routing.calibrate import calibrate, describe

    pool = _pool_names(args.pool) if args.pool else _default_pool()
    data = Path(args.data).expanduser() if args.data else bundled_questions()
    questions = read_questions(data, labelled=True)
    if not args.pool or not args.data:
        chosen = [f"pool: every installed model ({', '.join(pool)})" if not args.pool else "",
                  f"questions: the {len(questions)} bundled general-knowledge ones (--data FILE.jsonl for "
                  "questions like yours)" if not args.data else ""]
        print("note: " + "; ".join(c for c in chosen if c), file=sys.stderr)
    try:
        with progress_and_cancel("route calibrate", args.quiet) as (bar, token):
            summary = calibrate(pool, questions, kind=args.router, name=args.name,
                                device=args.device, data_file=data, seed=args.seed, progress=bar, cancel=token)
    except Cancelled:
        print("calibration cancelled: no router saved (the previous one, if any, is untouched)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        emit_json(summary)
        return 0
    print("\n".join(describe(summary)))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from routing.local_models import installed
    from routing.router_store import summaries

    rows = summaries({m.name for m in installed()})
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        print("no calibrated routers: `lensroute route calibrate` makes one (every installed model, the bundled questions)")
        return 0
    for row in rows:
        if row.get("pool") is None:
            print(f"{row['name']:<16} {row['problem']}")
            continue
        cv = row["cross_validated"] or {}
        quality = (f"; cross-validated accuracy {cv['router']:.3f} (best single {cv['best_single']:.3f})"
                   if cv.get("folds") else "")
        state = "" if row["usable"] else f"  [cannot answer: {row['problem']}]"
        print(f"{row['name']:<16} {row['kind']}: {', '.join(row['pool'])}; {row['questions']} questions, "
              f"{row['calibrated_at']}{quality}{state}")
    return 0


# --- answer / batch -----------------------------------------------------------------------------


def _session(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from routing.router_store import load_router
    from routing.serve import RoutingSession

    return RoutingSession(load_router(args.router_name), cost_weight=args.cost_weight, device=args.device)


def _print_answer(result: dict) -> None:
    chosen = result["chosen"]
    print(f"Q: {result['question']}")
    label = f"{chosen['answer']}" if chosen["answer"] is not None else "(not answered)"
    print(f"→ {chosen['model']}: {label}" + (f"   [{chosen['answer_ms']:.1f} ms]" if chosen["answer_ms"] is not None else ""))
    if "correct" in result:
        print(f"  correct: {'yes' if result['correct'] else 'no'}")
    for member in result["pool"]:
        mark = "*" if member["model"] == chosen["model"] else " "
        flag = "" if member["eligible"] else "  (cannot answer without choices)"
        print(f"  {mark} {member['model']:<28} predicted score {member['predicted_score']:.3f}  "
              f"cost {member['predicted_cost']:.4g} {member['cost_unit']}{flag}")
    for note in result["notes"]:
        print(f"  note: {note}")
    print(f"  routing decision {result['routing_ms']:.2f} ms")


def cmd_answer(args: argparse.Namespace) -> int:
    from routing.answering import Question, choices_problem

    if not args.question.strip():
        raise UsageError("the question is empty")
    choices = list(args.choices or [])
    if problem := choices_problem(choices):
        raise UsageError(f"--choices: {problem}")
    question = Question(args.question, choices)
    sampling = sampling_from_arguments(args)
    session = _session(args)
    decision, answer = ((session.decide(question), None) if args.decide_only
                        else session.answer(question, args.max_tokens, sampling))
    result = session.as_json(question, decision, answer)
    if args.json:
        emit_json(result)
    else:
        _print_answer(result)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from routing.answering import read_questions
    from routing.serve import batch_summary

    questions = read_questions(Path(args.file), labelled=False)
    sampling = sampling_from_arguments(args)
    session = _session(args)
    results: list[dict] = []
    cancelled = False
    with progress_and_cancel("route batch", args.quiet) as (bar, token):
        for i, question in enumerate(questions):
            if token.cancelled:
                cancelled = True
                break
            decision, answer = ((session.decide(question), None) if args.decide_only
                                else session.answer(question, args.max_tokens, sampling))
            results.append(session.as_json(question, decision, answer))
            bar(i + 1, len(questions), results[-1]["chosen"]["model"])
    if args.json:
        emit_json(results)
    else:
        for result in results:
            _print_answer(result)
    print(f"{len(results)}/{len(questions)} " + batch_summary(results).removeprefix(f"{len(results)} "), file=sys.stderr)
    if cancelled:
        print("batch cancelled: the answers above are the ones finished", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


CHAT_HELP = "/reset forgets the conversation, /exit (or Ctrl-D) ends it; Ctrl-C stops a reply"


def cmd_chat(args: argparse.Namespace) -> int:
    """A conversation in the terminal, or over a pipe (one message per line; with --json one
    JSON line out per message, each written as soon as it is answered)."""
    import json
    import signal

    from recommender.progress import CancelToken
    from routing.conversation import Conversation

    sampling = sampling_from_arguments(args)
    conversation = Conversation(_session(args), system=args.system, max_new_tokens=args.max_tokens, sampling=sampling)
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):  # line editing and ↑ for earlier messages, where the platform has it
            import readline  # noqa: F401
        pool = ", ".join(m.name for m in conversation.session.models)
        print(f"chatting through router {args.router_name!r} ({pool}); {CHAT_HELP}", file=sys.stderr)
    counts: dict[str, int] = {}
    replying: list[CancelToken] = []  # the reply under way, if any

    def on_sigint(signum, frame):  # type: ignore[no-untyped-def]
        if not replying or replying[0].cancelled:
            raise KeyboardInterrupt
        replying[0].cancel()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        for message in _chat_messages(interactive):
            if message == "/reset":
                conversation.reset()
                print("(the conversation is forgotten)", file=sys.stderr)
                continue
            if message == "/help":
                print(CHAT_HELP, file=sys.stderr)
                continue
            token = CancelToken()
            replying[:] = [token]
            try:
                if args.json:
                    result = conversation.ask(message, cancel=token)
                else:
                    result = conversation.ask(message, _write_piece, token, on_routed=_write_speaker)
            finally:
                replying.clear()
            counts[result["model"]] = counts.get(result["model"], 0) + 1
            if args.json:
                print(json.dumps(result, ensure_ascii=False), flush=True)
            else:
                print(flush=True)
                _print_turn_footer(result)
    finally:
        signal.signal(signal.SIGINT, previous)
    if counts:
        print(f"{sum(counts.values())} message(s) routed: " + ", ".join(f"{m} {n}" for m, n in sorted(counts.items())),
              file=sys.stderr)
    return 0


def _chat_messages(interactive: bool) -> Iterator[str]:
    """The user's messages, stripped and non-empty, until the end of the input, Ctrl-D or Ctrl-C
    at the prompt, or /exit (/quit)."""
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            return
        if not line and not interactive:  # the end of the piped input
            return
        message = line.strip()
        if message in ("/exit", "/quit"):
            return
        if message:
            yield message


def _write_speaker(model: str) -> None:
    sys.stdout.write(f"{model}> ")
    sys.stdout.flush()


def _write_piece(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()


def _print_turn_footer(result: dict) -> None:
    """Who answered and how it went, on stderr (the reply alone is on stdout)."""
    ending = {"length": ", cut at --max-tokens or the model's length", "cancelled": ", stopped"}.get(result["finish_reason"], "")
    print(f"  [{result['model']}: routed in {result['routing_ms']:.1f} ms, answered in {result['answer_ms'] / 1000:.2f} s"
          f"{ending}]", file=sys.stderr)
    for note in result["notes"]:
        print(f"  note: {note}", file=sys.stderr)


# --- registration -------------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("pool", parents=[common],
                            help="the recommended models for a task, and which of them run here")
    p.add_argument("--description", required=True, help="what the task is about")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--task", help="task type, e.g. Classification, Retrieval, multiple-choice QA")
    p.add_argument("--metric", help="metric name")
    p.add_argument("--language", action="append", metavar="LANG",
                   help="the task's language(s), as for `lensroute rank` (default: those the description names)")
    p.add_argument("--model", metavar="DIR", help="ranker folder (default: the trained or bundled one)")
    add_filter_arguments(p)
    p.add_argument("--json", action="store_true",
                   help='{"recommended": [{"rank", "model", "score", "known", "n_parameters", "runnable", "local_name"}], '
                        '"runnable", "not_runnable", "pool", "notes"}')
    p.set_defaults(func=cmd_pool)

    route = commands.add_parser("route", parents=[common], help="route queries among a pool of models")
    sub = route.add_subparsers(dest="route_command", metavar="ACTION")

    p = sub.add_parser("evaluate", parents=[common], help="routers vs best single, random and oracle on a score table")
    p.add_argument("table", help="parquet / CSV / JSONL: benchmark, prompt, model, score (0..1) [, query_id, cost_usd, split]")
    p.add_argument("--router", choices=ROUTER_CHOICES, default="all")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--prices", help="YAML {model: {input, output}} USD per 1M tokens, for models without costs")
    p.add_argument("--json", action="store_true",
                   help='rows {"benchmark", "router", "accuracy", "cost", "auc", "gap_closed", "queries"}')
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("pool-experiment", parents=[common],
                       help="routed accuracy with the recommender's Top-K pool vs K random models vs all")
    p.add_argument("table")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--router", choices=ROUTER_CHOICES[1:], default="knn")
    p.add_argument("--draws", type=positive_int, default=10, help="random pools drawn per benchmark (seeded)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--model", metavar="DIR", help="ranker folder (default: the trained or bundled one)")
    p.add_argument("--json", action="store_true",
                   help='rows {"benchmark", "pool", "k", "accuracy", "best_member", "queries", "models"}')
    p.set_defaults(func=cmd_pool_experiment)

    p = sub.add_parser("calibrate", parents=[common], help="run the pool on labelled questions and train its router")
    p.add_argument("--pool", action="append", metavar="NAMES",
                   help="installed local models, comma-separated or repeated (default: every installed one)")
    p.add_argument("--data", metavar="FILE.jsonl",
                   help='lines {"question", "choices", "answer"} (default: the 64 bundled general-knowledge questions)')
    p.add_argument("--router", choices=ROUTER_CHOICES[1:], default="knn")
    p.add_argument("--name", default="default", help="save the router under this name")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("list", parents=[common], help="the calibrated routers: pool, calibration, usable here")
    p.add_argument("--json", action="store_true",
                   help='[{"name", "kind", "pool", "questions", "data", "cross_validated", "calibrated_at", "usable", '
                        '"problem", "path"}]')
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("chat", parents=[common],
                       help="a conversation: each message routed, answered in the light of the ones before")
    p.add_argument("--system", metavar="TEXT", help="a system prompt: how the models should answer")
    p.add_argument("--max-tokens", type=positive_int, default=256, help="the longest reply, in tokens (default 256)")
    p.add_argument("--cost-weight", type=non_negative_float, default=0.0, metavar="λ",
                   help="trade predicted score against cost: choose argmax(score − λ·cost); 0 = quality only")
    p.add_argument("--router", dest="router_name", default="default", help="the calibrated router to use")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--json", action="store_true",
                   help='one line per message: {"message", "model", "reply", "finish_reason", "answer_ms", "routing_ms", '
                        '"pool", "turns", "usage": {"prompt_tokens", "completion_tokens"} | null (stopped), "notes"}')
    add_sampling_arguments(p)
    p.set_defaults(func=cmd_chat)

    for name, helptext in (("answer", "route one question and answer it"),
                           ("batch", "route and answer every question of a JSONL file")):
        p = sub.add_parser(name, parents=[common], help=helptext)
        if name == "answer":
            p.add_argument("question")
            p.add_argument("--choices", nargs="+", metavar="CHOICE", help="answer options (multiple choice)")
            p.set_defaults(func=cmd_answer)
        else:
            p.add_argument("file", help='JSONL lines {"question", "choices"?, "answer"?} (answer → accuracy)')
            p.set_defaults(func=cmd_batch)
        p.add_argument("--cost-weight", type=non_negative_float, default=0.0, metavar="λ",
                       help="trade predicted score against cost: choose argmax(score − λ·cost); 0 = quality only")
        p.add_argument("--router", dest="router_name", default="default", help="the calibrated router to use")
        p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        p.add_argument("--decide-only", action="store_true", help="print the routing decision without answering")
        p.add_argument("--json", action="store_true")
        p.add_argument("--max-tokens", type=positive_int, default=64,
                       help="the longest free-text reply, in tokens (default 64)")
        add_sampling_arguments(p)

    def show_help(args: argparse.Namespace) -> int:
        route.print_help(sys.stderr)
        return 2

    route.set_defaults(func=show_help)
