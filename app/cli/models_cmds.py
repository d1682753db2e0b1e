"""Local model commands: `lensroute models list | add | remove | build-builtin | bench`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.cli.arguments import fraction, positive_int
from app.cli.catalogue_cmds import emit_json
from recommender.errors import UsageError


def cmd_list(args: argparse.Namespace) -> int:
    from recommender.onnx_session import preferred_provider
    from routing.local_models import installed

    provider = preferred_provider()
    models = installed()
    if args.json:
        emit_json([{**m.as_json(provider), "accelerated": m.manifest.get("accelerated")} for m in models])
        return 0
    if not models:
        print("no local models; `lensroute models build-builtin` builds the two built-ins", file=sys.stderr)
    for model in models:
        print(f"{model.name:<28} {model.kind:<10} {provider:<24} {model.path}")
        if isinstance(info := model.manifest.get("accelerated"), dict):
            print(f"{'':<28} informed routing of {info.get('base')} at sparsity {info.get('sparsity')}: KL {info.get('kl')}, "
                  f"top-1 {info.get('top1')}, prefill ×{info.get('prefill_speedup')} at {info.get('prefill_tokens')} tokens")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from routing.local_models import add

    model = add(Path(args.path))
    print(f"added {model.name} ({model.kind}) from {model.path}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from routing.local_models import remove
    from routing.router_store import calibrate_command, routing_over

    location = remove(args.name)
    print(f"removed {args.name} ({location})")
    for router in routing_over(args.name):
        print(f"warning: router {router!r} routes over {args.name}: it cannot answer until {args.name} is back or "
              f"`{calibrate_command(router)}` makes a new pool", file=sys.stderr)
    return 0


def cmd_build_builtin(args: argparse.Namespace) -> int:
    from routing.builtins import BUILTINS
    from routing.local_models import local_dir

    names = args.only or list(BUILTINS)
    unknown = [n for n in names if n not in BUILTINS]
    if unknown:
        raise UsageError(f"unknown built-in(s) {', '.join(unknown)}; known: {', '.join(BUILTINS)}")
    built = []
    for name in names:
        print(f"building {name} …", file=sys.stderr)
        manifest = BUILTINS[name]()
        built.append({"name": name, "path": str(local_dir() / name), "check": manifest.get("check")})
    if args.json:
        emit_json(built)
    else:
        for model in built:
            print(f"built {model['name']} → {model['path']} (check: {model['check']})")
    return 0


def cmd_accelerate(args: argparse.Namespace) -> int:
    from app.cli.progress import progress_and_cancel
    from routing.accelerate import ACCELERATED, accelerate
    from routing.informed import RoutingConfig

    if not args.sparsity > 0:
        raise UsageError("--sparsity must be above 0 (0 is the dense model itself)")
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    config = RoutingConfig(lff_steps=args.lff_steps, router_steps=args.router_steps)
    calibration = Path(args.calibration) if args.calibration else None
    with progress_and_cancel(f"accelerate {args.name}", args.quiet) as (bar, token):
        model = accelerate(args.name, sparsity=args.sparsity, new_name=args.new_name, config=config,
                           calibration=calibration, device=device, progress=bar, cancel=token)
    info = model.manifest[ACCELERATED]
    result = {"name": model.name, "base": info["base"], "path": str(model.path), "sparsity": info["sparsity"],
              "kl": info["kl"], "top1": info["top1"], "prefill_tokens": info["prefill_tokens"],
              "prefill_speedup": info["prefill_speedup"], "check": model.manifest["check"]}
    if args.json:
        emit_json(result)
        return 0
    print(f"installed {model.name} → {model.path}")
    print(f"  against {info['base']} on held-out text: KL {info['kl']:.3f}, top-1 agreement {info['top1']:.3f}; "
          f"prefill of {info['prefill_tokens']} tokens ×{info['prefill_speedup']:.2f} (measured here)")
    print(f"  put it in a pool beside its base, and the router learns when it is good enough:\n"
          f"  lensroute route calibrate --pool {info['base']},{model.name}")
    return 0


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    models = commands.add_parser("models", parents=[common], help="local models: list, add, remove, build, bench, accelerate")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    p = sub.add_parser("list", parents=[common], help="installed local models")
    p.add_argument("--json", action="store_true",
                   help='a list of {"name", "kind", "path", "provider", "accelerated": {...} | null}')
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("add", parents=[common], help="register a model folder (model.onnx, tokenizer.json, lensroute-model.json)")
    p.add_argument("path")
    p.set_defaults(func=cmd_add)
    p = sub.add_parser("remove", parents=[common], help="forget a registered model (built-ins are deleted)")
    p.add_argument("name")
    p.set_defaults(func=cmd_remove)
    p = sub.add_parser("build-builtin", parents=[common], help="export the built-in models to ONNX (offline)")
    p.add_argument("--only", action="append", help="build only this one (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_build_builtin)

    p = sub.add_parser("bench", parents=[common],
                       help="informed routing: quality vs sparsity and measured speed (causal LM or embedding model)")
    p.add_argument("name")
    p.add_argument("--sparsity", type=fraction, action="append", help="repeatable; default 0, .125, .25, .375, .5")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--calibration", help="text or JSONL ({'text': …}) file instead of the routing-table prompts")
    p.add_argument("--lff-steps", type=positive_int, help="forecaster training steps (default 200 LM, 300 encoder)")
    p.add_argument("--router-steps", type=positive_int, help="router training steps (default 120 LM, 150 encoder)")
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--json", action="store_true", help='rows {"model", "method", "sparsity", "provider", "quality", '
                                                       '"prefill_ms", "decode_ms", "speedup", "theoretical_speedup"}; '
                                                       'quality: kl, top1 (causal LM) or cosine, retrieval_acc (embedding)')
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("accelerate", parents=[common],
                       help="install a faster informed-routing variant of a causal LM, as a model of its own")
    p.add_argument("name", help="the causal LM to accelerate (the built-in smollm2-135m-instruct)")
    p.add_argument("--sparsity", type=fraction, default=0.25,
                   help="share of tokens each unit approximates instead of running (default 0.25)")
    p.add_argument("--name", dest="new_name", metavar="NEW", help="the new model's name (default NAME-informed-S, S the sparsity in %%: …-informed-25)")
    p.add_argument("--lff-steps", type=positive_int, default=200, help="forecaster training steps (default 200)")
    p.add_argument("--router-steps", type=positive_int, default=120, help="router training steps (default 120)")
    p.add_argument("--calibration", help="text or JSONL ({'text': …}) file instead of the routing-table prompts")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to train (torch)")
    p.add_argument("--json", action="store_true",
                   help='{"name", "base", "path", "sparsity", "kl", "top1", "prefill_tokens", "prefill_speedup", "check"}')
    p.set_defaults(func=cmd_accelerate)

    def show_help(args: argparse.Namespace) -> int:
        models.print_help(sys.stderr)
        return 2

    models.set_defaults(func=show_help)


def cmd_bench(args: argparse.Namespace) -> int:
    from app.cli.progress import progress_and_cancel
    from routing.bench import SPARSITIES, bench_causal_lm, save_rows
    from routing.bench_embedding import bench_embedding, bert_config
    from routing.informed import RoutingConfig
    from routing.local_models import get

    sparsities = tuple(args.sparsity) if args.sparsity else SPARSITIES
    if any(not 0 <= s < 1 for s in sparsities):
        raise UsageError("--sparsity values must be in [0, 1)")
    model = get(args.name)
    calibration = Path(args.calibration) if args.calibration else None
    with progress_and_cancel(f"bench {args.name}", args.quiet) as (bar, token):
        if model.kind == "embedding":
            base = bert_config()
            config = RoutingConfig(**{**base.as_dict(), "lff_steps": args.lff_steps or base.lff_steps,
                                      "router_steps": args.router_steps or base.router_steps})
            rows = bench_embedding(args.name, sparsities=sparsities, device=args.device, config=config,
                                   calibration=calibration, repeats=args.repeats, progress=bar, cancel=token)
        else:
            config = RoutingConfig(lff_steps=args.lff_steps or 200, router_steps=args.router_steps or 120)
            rows = bench_causal_lm(args.name, sparsities=sparsities, device=args.device, config=config,
                                   calibration=calibration, repeats=args.repeats, progress=bar, cancel=token)
    saved = save_rows(rows, model.name)
    if args.json:
        emit_json([r.as_json() for r in rows])
        return 0
    keys = list(rows[0].quality)
    print(f"{'method':<9}{'sparsity':>9}" + "".join(f"{k:>15}" for k in keys)
          + "".join(f"{'prefill@' + k:>14}" for k in rows[0].prefill_ms) + f"{'decode/tok':>12}{'speedup':>9}{'theory':>8}")
    for r in rows:
        decode = "n/a" if r.decode_ms is None else f"{r.decode_ms:.2f}ms"
        print(f"{r.method:<9}{r.sparsity:>9.3f}" + "".join(f"{r.quality[k]:>15.4f}" for k in keys)
              + "".join(f"{v:>12.1f}ms" for v in r.prefill_ms.values())
              + f"{decode:>12}{r.speedup:>9.2f}{r.theoretical_speedup:>8.2f}")
    print(f"({rows[0].provider}; saved to {saved})")
    return 0
