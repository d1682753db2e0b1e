"""What every importer returns, and the registry that detects formats.

An importer turns one file (or one directory tree in a source's native layout) into a
`ParsedFile`: records in the unified schema plus model and dataset metadata. It never touches the
store; `recommender.ingest` writes what it returns, one transaction per import unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from recommender.records import Rejected, empty_records


@dataclass
class ParsedFile:
    records: pl.DataFrame = field(default_factory=empty_records)
    models: list[dict[str, object]] = field(default_factory=list)
    datasets: list[dict[str, object]] = field(default_factory=list)
    rejected: Rejected = field(default_factory=Rejected)
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportContext:
    """What an importer may need beyond the file: a source override and task metadata."""

    source: str | None = None
    # MTEB task name -> {"type", "main_score", "eval_splits"}; filled from the store and the seed.
    mteb_tasks: dict[str, dict[str, object]] = field(default_factory=dict)


@dataclass(frozen=True)
class Format:
    """One importable format.

    `sniff` looks at a path (cheaply: extension, a header line, a few keys) and says whether this
    format reads it. `parse` yields one or more `ParsedFile`s; trees yield one per natural unit
    (an MTEB model directory, an EEE board) so memory stays bounded and failures stay local.
    """

    name: str
    description: str
    sniff: Callable[[Path], bool]
    parse: Callable[[Path, ImportContext], Iterator[tuple[str, ParsedFile]]]
    is_tree: bool = False
    # How many units `parse` will yield, cheaply (a folder listing), so a long tree import can
    # show how far it is; None means one.
    count_units: Callable[[Path], int] | None = None


def single(parse_one: Callable[[Path, ImportContext], ParsedFile]) -> Callable[[Path, ImportContext], Iterator[tuple[str, ParsedFile]]]:
    """Adapt a one-file parser to the (label, ParsedFile) iterator shape."""

    def parse(path: Path, context: ImportContext) -> Iterator[tuple[str, ParsedFile]]:
        yield str(path), parse_one(path, context)

    return parse


UTF8_BOM = b"\xef\xbb\xbf"  # Windows editors and Excel start UTF-8 text with it


def read_head(path: Path, size: int = 4096) -> str:
    """The first bytes of a file as text, for sniffing (without a byte-order mark)."""
    with path.open("rb") as handle:
        return handle.read(size).removeprefix(UTF8_BOM).decode("utf-8", errors="replace")


def starts_with_bom(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(UTF8_BOM)) == UTF8_BOM


def first_line(path: Path) -> str:
    return read_head(path).splitlines()[0] if path.stat().st_size else ""
