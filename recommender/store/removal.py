"""Taking results back out of the catalogue: a source imported by mistake, or one model's
results from a source that got them wrong.

Without this the only undo of a wrong `import --source mine` was hand-written SQL. A removal runs
in one write transaction (all or nothing) and takes with each record the superseded values kept
for it in `record_history`. The source's value scales are recomputed from what is left, and its
generation is bumped, never reset: import digests remember a source by name and generation, so a
later re-import of the same file compares row by row and puts the records back, instead of being
answered "unchanged" from a digest of records that are gone. Models, datasets and metrics stay:
their metadata may come from elsewhere, and statistics count only what has records.

Plain SQL on both engines, no polars: `lensroute delete` starts as fast as `stats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from recommender import normalise
from recommender.errors import NotFoundError, UsageError
from recommender.store.driver import mark
from recommender.store.engine import Store
from recommender.store.lookup import model_id_of, not_found

if TYPE_CHECKING:
    from recommender.store.driver import DriverConnection


@dataclass(frozen=True)
class Removal:
    source: str
    model: str | None  # None: every model of the source
    records: int
    history: int  # superseded values kept for those records, removed with them
    models: int  # distinct models among the removed records
    datasets: int
    applied: bool  # False for a dry run

    def as_json(self) -> dict[str, object]:
        return {"source": self.source, "model": self.model, "records": self.records, "history": self.history,
                "models": self.models, "datasets": self.datasets, "applied": self.applied}


def remove_records(store: Store, source: str, model: str | None = None, *, dry_run: bool = False) -> Removal:
    """Remove every record of `source` (only `model`'s, when given); `dry_run` counts and
    changes nothing. An unknown source or model, or a model the source has no results for, is a
    NotFoundError naming what there is."""
    with store.writing() as conn:
        q = mark(conn)
        found = conn.exec_driver_sql(  # a source whose records were all deleted keeps its row, not its name
            f"SELECT id FROM sources s WHERE name = {q} AND EXISTS (SELECT 1 FROM records r WHERE r.source_id = s.id)",
            (source,)).first()
        if found is None:
            names = [n for (n,) in conn.exec_driver_sql(
                "SELECT name FROM sources s WHERE EXISTS (SELECT 1 FROM records r WHERE r.source_id = s.id) ORDER BY name")]
            raise NotFoundError(f"no source named {source!r} in the catalogue (it has: {', '.join(names) or 'none'})")
        source_id = int(found[0])
        where, params = f"source_id = {q}", (source_id,)
        model_name = None
        if model is not None:
            if not model.strip():
                raise UsageError("name the model whose records should go (or leave out --model)")
            model_id = model_id_of(conn, model.strip())
            if model_id is None:
                raise not_found("model", model, [n for (n,) in conn.exec_driver_sql("SELECT name FROM models")])
            model_name = conn.exec_driver_sql(f"SELECT name FROM models WHERE id = {q}", (model_id,)).scalar_one()
            where, params = where + f" AND model_id = {q}", (*params, model_id)
        records, models, datasets = conn.exec_driver_sql(
            f"SELECT COUNT(*), COUNT(DISTINCT model_id), COUNT(DISTINCT dataset_id) FROM records WHERE {where}", params).one()
        if not records:
            raise NotFoundError(f"source {source!r} holds no records of model {model_name!r}")
        history = conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM record_history WHERE record_id IN (SELECT id FROM records WHERE {where})", params).scalar()
        removal = Removal(source, model_name, int(records), int(history or 0), int(models), int(datasets), not dry_run)
        if dry_run:
            return removal
        conn.exec_driver_sql(f"DELETE FROM record_history WHERE record_id IN (SELECT id FROM records WHERE {where})", params)
        conn.exec_driver_sql(f"DELETE FROM records WHERE {where}", params)
        _rescale(conn, source_id)
        conn.exec_driver_sql(f"UPDATE sources SET generation = generation + 1 WHERE id = {q}", (source_id,))
    return removal


def _rescale(conn: DriverConnection, source_id: int) -> None:
    """The source's value range per metric, from the records it still has (see writer._update_scales)."""
    q = mark(conn)
    left = conn.exec_driver_sql(
        f"SELECT metric_id, MIN(value), MAX(value), COUNT(*) FROM records WHERE source_id = {q} GROUP BY metric_id",
        (source_id,)).fetchall()
    conn.exec_driver_sql(f"DELETE FROM metric_scales WHERE source_id = {q}", (source_id,))
    rows = [(source_id, metric_id, normalise.detect_scale(lo, hi), lo, hi, n) for metric_id, lo, hi, n in left]
    if rows:
        conn.exec_driver_sql(
            "INSERT INTO metric_scales (source_id, metric_id, scale, min_value, max_value, n_values) "
            f"VALUES ({q}, {q}, {q}, {q}, {q}, {q})", rows)
