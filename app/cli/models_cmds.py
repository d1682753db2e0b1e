"""Local model commands (`lensroute models …`)."""

from __future__ import annotations

import argparse
import sys

from app.cli.catalogue_cmds import emit_json


def cmd_build_builtin(args: argparse.Namespace) -> int:
    from recommender.text_encoder import build_minilm, encoder_dir

    manifest = build_minilm()
    built = [{"name": manifest["name"], "path": str(encoder_dir()), "check": manifest["check"]}]
    if args.json:
        emit_json(built)
    else:
        for model in built:
            print(f"built {model['name']} → {model['path']} (check: {model['check']})")
    return 0


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    models = commands.add_parser("models", parents=[common], help="local models: build the built-ins")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    p = sub.add_parser("build-builtin", parents=[common], help="export the built-in models to ONNX (offline)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_build_builtin)
    models.set_defaults(func=lambda args: (models.print_help(sys.stderr), 2)[1])
