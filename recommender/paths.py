"""Where lensroute keeps its data, and which database it talks to.

`LENSROUTE_HOME` (default: the platform's user data directory) holds the SQLite catalogue, caches
and trained models; `LENSROUTE_DB` / `--db` take any SQLAlchemy URL so a team can share one
PostgreSQL catalogue instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "lensroute"


def home_dir() -> Path:
    """The data root, created on first use."""
    configured = os.environ.get("LENSROUTE_HOME")
    if configured:
        root = Path(configured).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_data_dir(APP_NAME))
    root.mkdir(parents=True, exist_ok=True)
    return root


def config_dir() -> Path:
    configured = os.environ.get("LENSROUTE_CONFIG")
    if configured:
        root = Path(configured).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_config_dir(APP_NAME))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir() -> Path:
    path = home_dir() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Trained rankers and exported ONNX files."""
    path = home_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def training_checkpoint(ranker: Path) -> Path:
    """Where training the ranker folder `ranker` keeps its checkpoint: there only while a training
    is unfinished (`pipeline.train_ranker` removes it once the ranker is exported)."""
    return ranker.with_name(ranker.name + ".checkpoint.pt")


def nothing_to_resume(ranker: Path) -> str | None:
    """What `--resume` says when there is no unfinished training of `ranker` (it then trains from
    the start), for `lensroute train` and the torchrun trainer alike; None when there is one."""
    if training_checkpoint(ranker).exists():
        return None
    return f"no unfinished training of {ranker} to resume: training from the first epoch"


def writable_parent(ranker: Path) -> None:
    """Create the ranker folder's parent before minutes of work, not when the first checkpoint is
    written; one that cannot be made is the user's path to fix, said in one line."""
    from recommender.errors import UsageError

    try:
        ranker.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write the ranker to {ranker}: {exc.strerror or exc}") from exc
    if not os.access(ranker.parent, os.W_OK):
        raise UsageError(f"cannot write the ranker to {ranker}: {ranker.parent} is not writable")


def database_url(explicit: str | None = None) -> str:
    """`--db` wins over `LENSROUTE_DB`, which wins over the SQLite file under the home dir.

    A bare filesystem path is accepted too and taken as an SQLite file.
    """
    url = explicit or os.environ.get("LENSROUTE_DB")
    if not url:
        return f"sqlite:///{home_dir() / 'catalogue.db'}"
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def resources_dir() -> Path:
    """The bundled resources (seed catalogue, calibration questions, prices, the icon): the source
    tree's `resources/` when running from a checkout (an editable install), else the copy a wheel
    installs under `<prefix>/share/lensroute/resources` (see pyproject's data-files). The frozen
    application keeps the same layout under its own prefix (installer/freeze.sh puts it there)."""
    source_tree = Path(__file__).resolve().parent.parent / "resources"
    if source_tree.is_dir():
        return source_tree
    return Path(sys.prefix) / "share" / APP_NAME / "resources"


def bundled_models_dir() -> Path:
    """Ready-built ONNX models shipped with the program (the frozen application carries the text
    encoder here, since it cannot build one without torch); read-only, unlike `models_dir()`."""
    return resources_dir() / "models"
