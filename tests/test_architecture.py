"""Architecture rules that must hold as the code grows (STYLE.md conventions 1 and 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    """No Qt in the cores or on the CLI path; app over routing over recommender."""
    lint = Path(sys.executable).parent / "lint-imports"  # import-linter's console script
    done = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def test_cli_path_does_not_load_qt() -> None:
    code = "import sys; from app.cli.main import build_parser; build_parser(); print(any(m.startswith('PySide6') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
