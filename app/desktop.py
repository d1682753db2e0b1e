"""The desktop launcher: a freedesktop.org `.desktop` entry and the icon, per user.

Written by `lensroute desktop install` (the packaged installer calls it), so the app shows up in
the desktop's application menu and opens with `lensroute gui`. Only files under the user's
`$XDG_DATA_HOME` are touched; `remove` takes away exactly what `install` wrote.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from recommender import paths
from recommender.errors import NotFoundError

ENTRY_NAME = "lensroute.desktop"
ICON_NAME = "lensroute.svg"


def data_home() -> Path:
    configured = os.environ.get("XDG_DATA_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".local" / "share"


def entry_path() -> Path:
    return data_home() / "applications" / ENTRY_NAME


def icon_path() -> Path:
    return data_home() / "icons" / "hicolor" / "scalable" / "apps" / ICON_NAME


def launcher() -> Path:
    """The `lensroute` console script of the running installation (absolute: a launcher does not
    see the shell's PATH)."""
    script = Path(sys.executable).parent / "lensroute"
    if not script.is_file():
        raise NotFoundError(f"no lensroute script next to {sys.executable}: install lensroute into this environment first")
    return script


def entry_text(executable: Path) -> str:
    # Exec is quoted per the Desktop Entry spec, so an install path with spaces still launches.
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.5",
        "Name=lensroute",
        "GenericName=Model recommender and router",
        "Comment=Find the public models that will do best on your task, then route each query among them",
        f'Exec="{executable}" gui',
        f"TryExec={executable}",
        "Icon=lensroute",
        "Terminal=false",
        "Categories=Development;Science;ArtificialIntelligence;",
        "Keywords=model;leaderboard;ranking;routing;onnx;",
        "StartupWMClass=lensroute",
        "",
    ])


def install(executable: Path | None = None) -> list[Path]:
    """Write the entry and the icon; returns what was written (an existing entry is replaced)."""
    executable = (executable or launcher()).resolve()
    icon_source = paths.resources_dir() / ICON_NAME
    if not icon_source.is_file():
        raise NotFoundError(f"the icon is missing from this installation ({icon_source})")
    icon, entry = icon_path(), entry_path()
    for target in (icon, entry):
        target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(icon_source, icon)
    entry.write_text(entry_text(executable), encoding="utf-8")
    return [icon, entry]


def remove() -> list[Path]:
    """Delete the entry and the icon where present; returns what was deleted."""
    removed = []
    for target in (entry_path(), icon_path()):
        if target.is_file():
            target.unlink()
            removed.append(target)
    return removed
