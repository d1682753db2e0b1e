"""The `lensroute` console script: the GUI with no arguments (or `gui`), the CLI otherwise.

Kept apart from `app.cli` so the CLI path never imports Qt (QtGui needs libEGL, which a server
may lack) and the GUI path never pays for argparse set-up of every command.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] == "gui":
        from app.gui.main import run_gui

        return run_gui(args[1:])
    from app.cli.main import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
