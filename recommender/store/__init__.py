"""The catalogue store: schema, migrations, engine and the record writer."""

from recommender.store.engine import Store, create_engine
from recommender.store.migrations import LATEST_VERSION, current_version, upgrade

__all__ = ["LATEST_VERSION", "Store", "create_engine", "current_version", "upgrade"]
