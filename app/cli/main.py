"""The lensroute command line: results on stdout, logs and progress on stderr.

Exit codes: 0 ok, 1 unexpected error, 2 usage, 3 not found, 4 no data, 5 runtime unavailable,
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from app.cli import (
    catalogue_cmds,
    crawl_cmds,
    desktop_cmds,
    doctor_cmds,
    models_cmds,
    recommend_cmds,
    route_cmds,
    serve_cmds,
    show_cmds,
)
from recommender.errors import (
    EXIT_INTERRUPTED,
    EXIT_UNEXPECTED,
    LensrouteError,
    missing_build_module,
)

EPILOG = """exit codes: 0 ok, 1 unexpected error, 2 usage, 3 not found, 4 no data,
5 runtime unavailable, 130 interrupted

environment: LENSROUTE_HOME (data folder), LENSROUTE_DB (database URL), NO_COLOR (no progress bar)"""

COMMAND_MODULES = (catalogue_cmds, show_cmds, crawl_cmds, recommend_cmds, models_cmds, route_cmds, serve_cmds, desktop_cmds,
                   doctor_cmds)


def version() -> str:
    from importlib import metadata  # 20 ms of start-up that only --version needs

    try:
        return metadata.version("lensroute")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class _VersionAction(argparse.Action):
    """argparse's own version action formats its string when the parser is built, i.e. on every run."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        print(f"lensroute {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                        help="database URL or SQLite path (default: $LENSROUTE_DB or $LENSROUTE_HOME/catalogue.db)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser = argparse.ArgumentParser(
        prog="lensroute",
        description="Find the public models that will do best on your task, and route queries among them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in (("db", None), ("quiet", False), ("debug", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except LensrouteError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"lensroute: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lensroute: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except ModuleNotFoundError as exc:
        missing = missing_build_module(exc)
        if missing is None:
            return _unexpected(exc, args.debug)
        print(f"lensroute: error: {missing}", file=sys.stderr)
        return missing.exit_code
    except Exception as exc:  # the last line of defence: one line, never a traceback by default
        return _unexpected(exc, args.debug)


def _unexpected(exc: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    print(f"lensroute: unexpected error: {type(exc).__name__}: {first} (run with --debug for details)",
          file=sys.stderr)
    return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
