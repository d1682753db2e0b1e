"""Answering a re-import of unchanged files from the store, without parsing them.

`lensroute import PATH` is often run again on the same files (a cron job, a script that always
imports its folder). Each unit already carries a content digest (`ingest.unit_digest`) that
skips the row-by-row comparison, but computing it means parsing the file, and parsing means
loading polars: most of a re-import's time. Here a command-line target (a file, or a folder of
files) is remembered with the SHA-256 of every file under it and the units it produced. When
every file still has the same bytes and no write touched the units' sources since (their
generations, as the content digest also checks), the earlier result is the answer: every row
unchanged, nothing read but the file bytes.

Only targets whose units are single files qualify: a native tree (an MTEB results folder) can
hold tens of thousands of files, and its units are folders, so it keeps the per-unit digest.
A folder with more than `MAX_FILES` files is not remembered either, so the hashing here never
costs more than the parse it saves. This module avoids polars on purpose (see above).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.import_report import ImportReport, Rejected, UnitResult, WriteCounts
from recommender.store import Store
from recommender.store.driver import mark, placeholders, select_in
from recommender.store.queries import source_generations

if TYPE_CHECKING:
    from recommender.store.driver import DriverConnection

MAX_FILES = 2_000


def unit_key(format_name: str, label: str, source: str | None) -> str:
    """The key of one import unit in `import_digests`."""
    return f"{format_name}:{Path(label).resolve()}:{source or ''}"


def target_key(target: Path, forced_format: str | None, source: str | None) -> str:
    """The same path imported with another --format or --source is another import."""
    return json.dumps([str(target.resolve()), forced_format or "", source or ""])


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _files_under(folder: Path) -> list[Path] | None:
    """Every regular file under `folder` (following links, as the import's expansion does, but
    each real folder once, so a link back up the tree ends), or None beyond MAX_FILES files."""
    found: list[Path] = []
    pending = [folder]
    seen: set[Path] = set()
    while pending:
        current = pending.pop()
        real = current.resolve()
        if real in seen:
            continue
        seen.add(real)
        for entry in sorted(current.iterdir(), reverse=True):
            if entry.is_dir():
                pending.append(entry)
            elif entry.is_file():
                found.append(entry)
                if len(found) > MAX_FILES:
                    return None
    return sorted(found)


def snapshot(target: Path) -> dict[str, str] | None:
    """{path relative to the target: SHA-256} of what an import of `target` reads; None when the
    target cannot be remembered (missing, special, or a folder with too many files)."""
    try:
        if target.is_file():
            return {"": _sha256(target)}
        if target.is_dir():
            files = _files_under(target)
            if files is None:
                return None
            return {str(f.relative_to(target)): _sha256(f) for f in files}
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class RememberedUnit:
    label: str
    format: str
    unit: str
    rows: int
    rejected: dict[str, int]


def remember(
    store: Store,
    target: Path,
    forced_format: str | None,
    source: str | None,
    files: dict[str, str],
    units: Sequence[RememberedUnit],
    skipped: Sequence[str],
    when: str,
) -> None:
    """Keep what importing `target` produced, keyed by the bytes it read (`files`, taken before
    parsing: a file changed during the import then differs next time and is read again)."""
    key = target_key(target, forced_format, source)
    payload = json.dumps([u.__dict__ for u in units])
    with store.writing() as conn:
        conn.exec_driver_sql(f"DELETE FROM import_targets WHERE target = {mark(conn)}", (key,))
        conn.exec_driver_sql(
            f"INSERT INTO import_targets (target, files, units, skipped, imported_at) VALUES ({placeholders(conn, 5)})",
            (key, json.dumps(files, sort_keys=True), payload, json.dumps(list(skipped)), when),
        )


def forget(store: Store, target: Path, forced_format: str | None, source: str | None) -> None:
    with store.writing() as conn:
        conn.exec_driver_sql(f"DELETE FROM import_targets WHERE target = {mark(conn)}",
                             (target_key(target, forced_format, source),))


@dataclass
class Check:
    """What importing `targets` can skip: the remembered results of the unchanged ones, and the
    snapshot of every target (None where it cannot be remembered), taken before anything is
    parsed so that the importer can remember the others afterwards."""

    targets: list[Path]
    snapshots: dict[Path, dict[str, str] | None]
    answered: dict[Path, list[UnitResult]] = field(default_factory=dict)
    skipped: dict[Path, list[str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.answered) == len(self.targets)

    def report(self) -> ImportReport:
        """The results of the answered targets, in command-line order."""
        report = ImportReport()
        for target in self.targets:
            if target in self.answered:
                report.units.extend(self.answered[target])
                report.skipped.extend(self.skipped[target])
        return report


def check(
    store: Store, targets: Sequence[Path], forced_format: str | None, source: str | None, *, look_up: bool = True
) -> Check:
    """Hash every target; with `look_up`, answer those whose bytes and sources are as remembered
    (`--force` hashes only, to remember what it reads)."""
    result = Check(list(targets), {t: snapshot(t) for t in targets})
    if not look_up:
        return result
    with store.reading() as conn:
        for target in result.targets:
            remembered = _remembered(conn, target, result.snapshots[target], forced_format, source)
            if remembered is not None:
                units, skipped = remembered
                result.answered[target] = [
                    UnitResult(u.label, u.format, u.label,  # as the full import names it: the file
                               WriteCounts(unchanged=u.rows, rejected=Rejected(dict(u.rejected))), not_read=True)
                    for u in units
                ]
                result.skipped[target] = skipped
    return result


def _remembered(
    conn: DriverConnection, target: Path, files: dict[str, str] | None, forced_format: str | None, source: str | None
) -> tuple[list[RememberedUnit], list[str]] | None:
    """The remembered units and skipped files of `target` when they still hold, else None."""
    if files is None:
        return None
    row = conn.exec_driver_sql(
        f"SELECT files, units, skipped FROM import_targets WHERE target = {mark(conn)}",
        (target_key(target, forced_format, source),),
    ).first()
    if row is None:
        return None
    try:  # a row this version cannot read (written by another one) is simply not used
        if json.loads(row[0]) != files:
            return None
        units = [RememberedUnit(**u) for u in json.loads(row[1])]
        skipped = [str(s) for s in json.loads(row[2])]
    except (ValueError, TypeError):
        return None
    if not units or not _digests_still_valid(conn, [u.unit for u in units]):
        return None
    return units, skipped


def _digests_still_valid(conn: DriverConnection, unit_keys: list[str]) -> bool:
    """Every unit still has its digest, and no write touched the units' sources after the last
    of them was written: each source is still at the highest generation a unit recorded.

    (A writer in another process that wrote one of these sources *between* two units of the
    same import is not seen; the next import of a changed file, or any later write to the
    source, takes the full path again.)
    """
    rows = select_in(conn, "SELECT unit, generations FROM import_digests WHERE unit IN ({in})", sorted(set(unit_keys)))
    if len(rows) != len(set(unit_keys)):
        return False
    expected: dict[str, int] = {}
    for _unit, generations in rows:
        for name, generation in json.loads(generations).items():
            expected[name] = max(expected.get(name, generation), generation)
    return source_generations(conn, expected) == expected
