"""`lensroute doctor`: what is installed and working here, and how to fix what is not."""

from __future__ import annotations

import argparse

from app.cli.catalogue_cmds import emit_json


def cmd_doctor(args: argparse.Namespace) -> int:
    from app import doctor
    from app.cli.main import version

    checks = doctor.run_checks(args.db)
    code = doctor.exit_code(checks)
    report = doctor.report(checks, version())
    if args.json:
        emit_json(report)
        return code
    print(f"lensroute {report['version']} (Python {report['python']}{', frozen' if report['frozen'] else ''}: "
          f"{report['executable']})")
    for check in checks:
        mark = "ok" if check.ok else ("FAIL" if check.needed else "--")
        print(f"  {mark:<4} {check.name:<15} {check.detail}")
        if check.fix and not check.ok:
            print(f"       {'':<15} fix: {check.fix}")
    print("everything the main job needs is here" if code == 0 else
          "something the main job needs is missing: see FAIL above")
    return code


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("doctor", parents=[common], help="check what is installed and working here, and how to fix the rest")
    p.add_argument("--json", action="store_true",
                   help='{"version", "python", "executable", "frozen", "ok", "checks": [{"name", "ok", "detail", "fix", "needed"}]}')
    p.set_defaults(func=cmd_doctor)
