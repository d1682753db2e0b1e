"""`lensroute desktop install | remove`: the per-user application-menu launcher (app.desktop)."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.catalogue_cmds import emit_json


def cmd_desktop(args: argparse.Namespace) -> int:
    from app import desktop

    if args.action == "install":
        done = desktop.install(Path(args.executable).expanduser() if args.executable else None)
        verb = "wrote"
    else:
        done = desktop.remove()
        verb = "removed"
    if args.json:
        emit_json({"action": args.action, "paths": [str(p) for p in done]})
    elif done:
        for path in done:
            print(f"{verb} {path}")
    else:
        print("no lensroute launcher was installed")
    return 0


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("desktop", parents=[common], help="add or remove the application-menu launcher",
                            description="The freedesktop.org launcher (and icon) under $XDG_DATA_HOME, for this user.")
    p.add_argument("action", choices=["install", "remove"])
    p.add_argument("--executable", metavar="PATH",
                   help="the lensroute script the launcher runs (default: the one of this installation)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_desktop)
