"""Local model commands: `lensroute models list | add | remove | build-builtin | bench`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.cli.catalogue_cmds import emit_json
from recommender.errors import UsageError


def cmd_list(args: argparse.Namespace) -> int:
    from recommender.onnx_session import preferred_provider
    from routing.local_models import installed

    provider = preferred_provider()
    models = installed()
    if args.json:
        emit_json([m.as_json(provider) for m in models])
        return 0
    if not models:
        print("no local models; `lensroute models build-builtin` builds the two built-ins", file=sys.stderr)
    for model in models:
        print(f"{model.name:<28} {model.kind:<10} {provider:<24} {model.path}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from routing.local_models import add

    model = add(Path(args.path))
    print(f"added {model.name} ({model.kind}) from {model.path}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from routing.local_models import remove

    location = remove(args.name)
    print(f"removed {args.name} ({location})")
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


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    models = commands.add_parser("models", parents=[common], help="local models: list, add, remove, build, bench")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    p = sub.add_parser("list", parents=[common], help="installed local models")
    p.add_argument("--json", action="store_true", help='a list of {"name", "kind", "path", "provider"}')
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

    def show_help(args: argparse.Namespace) -> int:
        models.print_help(sys.stderr)
        return 2

    models.set_defaults(func=show_help)
