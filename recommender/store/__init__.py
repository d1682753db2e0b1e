"""The catalogue store: schema, migrations, engine and the record writer.

`Store` and `LATEST_VERSION` load without SQLAlchemy (see `engine`); the names that need it are
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recommender.store.engine import Store
from recommender.store.versions import LATEST_VERSION

if TYPE_CHECKING:
    from recommender.store.engine import create_engine
    from recommender.store.migrations import current_version, upgrade

__all__ = ["LATEST_VERSION", "Store", "create_engine", "current_version", "upgrade"]


def __getattr__(name: str) -> Any:
    if name == "create_engine":
        from recommender.store.engine import create_engine

        return create_engine
    if name in ("current_version", "upgrade"):
        from recommender.store import migrations

        return getattr(migrations, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
