"""The small CSV-or-JSONL files users hand the ranker (candidates, measured results): their rows,
with one error line that names the file and the line for anything unreadable."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from recommender.errors import FormatError, NotFoundError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def read_rows(path: Path, what: str) -> list[dict]:
    """Rows of a JSONL file (by its suffix; blank lines skipped) or else a CSV file with a header.
    A byte-order mark, as Excel and Windows editors write, is skipped. `what` names the file in
    errors ("candidates" → "malformed candidates file c.csv: …")."""
    if not path.is_file():
        raise NotFoundError(f"{what} file not found: {path}")
    try:
        if path.suffix.lower() not in JSONL_SUFFIXES:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                return list(csv.DictReader(handle))
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise FormatError(f"malformed {what} file {path.name} line {number}: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise FormatError(f"{path.name} line {number}: not a JSON object")
            rows.append(row)
        return rows
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise FormatError(f"malformed {what} file {path.name}: {str(exc).splitlines()[0]}") from exc
