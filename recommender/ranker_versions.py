"""Earlier trained rankers, kept beside the one in use so a user can compare and go back.

Training replaces `<dir>/`; the ranker it replaces moves to `<dir>-versions/<model_version>/`
(the newest `KEEP` are kept). `use_version` swaps an archived version in, archiving the current
one, with directory renames only: a reader never sees a half-written ranker.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from recommender.errors import NotFoundError

KEEP = 5


def versions_dir(current: Path) -> Path:
    return current.with_name(current.name + "-versions")


def _manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def archive_current(current: Path) -> Path | None:
    """Move the ranker in `current` into the versions folder (None when there is none to keep)."""
    if not (current / "manifest.json").is_file():
        shutil.rmtree(current, ignore_errors=True)
        return None
    version = str(_manifest(current).get("model_version") or "unknown")
    target = versions_dir(current) / version
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(current, target)
    kept = sorted(versions_dir(current).iterdir(), key=lambda p: str(_manifest(p).get("created_at", "")), reverse=True)
    for old in kept[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_versions(current: Path) -> list[dict]:
    """The ranker in use first, then the archived ones, newest first."""
    archived = [p for p in versions_dir(current).glob("*") if (p / "manifest.json").is_file()]
    archived.sort(key=lambda p: str(_manifest(p).get("created_at", "")), reverse=True)
    folders = ([current] if (current / "manifest.json").is_file() else []) + archived
    out = []
    for folder in folders:
        m = _manifest(folder)
        validation = m.get("validation") or {}
        out.append({"model_version": m.get("model_version"), "created_at": m.get("created_at"),
                    "best_val_tau_w": validation.get("best_val_tau_w"), "records": (m.get("data") or {}).get("records"),
                    "in_use": folder == current, "path": str(folder)})
    return out


def use_version(current: Path, version: str) -> None:
    """Make an archived version the one in use (the current one is archived)."""
    chosen = versions_dir(current) / version
    if not (chosen / "manifest.json").is_file():
        raise NotFoundError(f"no archived ranker version {version!r} in {versions_dir(current)}")
    staging = current.with_name(current.name + ".switching")
    shutil.rmtree(staging, ignore_errors=True)
    os.replace(chosen, staging)
    if current.exists():
        archive_current(current)
    os.replace(staging, current)
