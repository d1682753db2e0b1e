"""Read side of the catalogue for one model or one dataset: everything it knows, and its results.

A ranking names models a user may never have heard of; before taking one they want its size,
licence and measured results, and for a dataset, which models did best on it. Names resolve the
way imports resolve them (case, revision suffix, a bare name that one organisation has), and a
name that resolves to nothing comes back with the closest names the catalogue does have.

Plain SQL, no polars: `lensroute show` starts as fast as `stats`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from recommender.errors import NotFoundError, UsageError
from recommender.normalise import bare_key, close_names, fold_term, model_key
from recommender.store.driver import mark
from recommender.store.engine import Store

SUGGESTIONS = 5


@dataclass
class ModelInfo:
    name: str
    family: str | None
    n_parameters: int | None
    release_date: str | None
    licence: str | None
    open_weights: bool | None
    downloads: int | None
    description: str | None
    aliases: list[str]
    sources: dict[str, int]  # source → records
    records: list[dict] = field(default_factory=list)

    def facts(self) -> list[str]:
        """Family, size, licence, openness and release, as far as they are recorded."""
        from recommender.model_filters import describe_size

        facts = [f"family {self.family}"] if self.family else []
        if self.n_parameters:
            facts.append(f"{describe_size(float(self.n_parameters))} parameters")
        if self.licence:
            facts.append(f"licence {self.licence}")
        if self.open_weights is not None:
            facts.append("open weights" if self.open_weights else "API only")
        if self.release_date:
            facts.append(f"released {self.release_date}")
        return facts

    def as_json(self) -> dict:
        return {"model": {"name": self.name, "family": self.family, "n_parameters": self.n_parameters,
                          "release_date": self.release_date, "licence": self.licence, "open_weights": self.open_weights,
                          "downloads": self.downloads, "description": self.description},
                "aliases": self.aliases, "sources": self.sources, "records": self.records}


@dataclass
class DatasetInfo:
    name: str
    task_type: str | None
    main_metric: str | None
    description: str | None
    languages: list[str]
    sources: dict[str, int]
    records: list[dict] = field(default_factory=list)  # per metric, best first

    def as_json(self) -> dict:
        return {"dataset": {"name": self.name, "task_type": self.task_type, "main_metric": self.main_metric,
                            "description": self.description, "languages": self.languages},
                "sources": self.sources, "records": self.records}


def not_found(kind: str, wanted: str, names: list[str]) -> NotFoundError:
    suggestions = close_names(wanted, names, SUGGESTIONS)
    hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    return NotFoundError(f"{kind} {wanted!r} is not in the catalogue{hint}")


def model_id_of(conn, wanted: str) -> int | None:  # type: ignore[no-untyped-def]
    """The model a name means. A bare name that is stored on its own without results (a metadata
    or routing entry) gives way to the one `org/name` that has results, as in the ranker."""
    q = mark(conn)
    key = model_key(wanted)
    found = None
    row = conn.exec_driver_sql(f"SELECT model_id FROM model_aliases WHERE alias = {q}", (key,)).first()
    if row is None:
        row = conn.exec_driver_sql(f"SELECT id FROM models WHERE name = {q}", (wanted,)).first()
    if row is not None:
        found = int(row[0])
    if "/" in key or not key or (found is not None and _has_records(conn, found)):
        return found
    owners = [mid for mid, name in conn.exec_driver_sql(f"SELECT id, name FROM models WHERE LOWER(name) LIKE {q}",
                                                         (f"%/{key}",))
              if bare_key(model_key(name)) == key and _has_records(conn, mid)]
    return int(owners[0]) if len(owners) == 1 else found


def _has_records(conn, model_id: int) -> bool:  # type: ignore[no-untyped-def]
    q = mark(conn)
    return conn.exec_driver_sql(f"SELECT 1 FROM records WHERE model_id = {q} LIMIT 1", (model_id,)).first() is not None


def _per_source(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["source"]] = counts.get(row["source"], 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


_RECORD_COLUMNS = ("SELECT d.name, r.task, m.name, r.value, m.higher_is_better, r.split, r.subset, r.variant, s.name, "
                   "COALESCE(sr.prefix, '') || r.source_ref_tail, r.evaluated_at, mo.name "
                   "FROM records r JOIN datasets d ON d.id = r.dataset_id JOIN metrics m ON m.id = r.metric_id "
                   "JOIN sources s ON s.id = r.source_id JOIN models mo ON mo.id = r.model_id "
                   "LEFT JOIN source_refs sr ON sr.id = r.source_ref_id ")


def _record(row: tuple) -> dict:
    dataset, task, metric, value, higher, split, subset, variant, source, ref, evaluated_at, model = row
    return {"model": model, "dataset": dataset, "task": task or None, "metric": metric, "value": value,
            "higher_is_better": None if higher is None else bool(higher), "split": split or None, "subset": subset or None,
            "variant": variant or None, "source": source, "source_ref": ref or None, "evaluated_at": evaluated_at}


def model_info(store: Store, wanted: str) -> ModelInfo:
    """Everything the catalogue holds on one model; NotFoundError (with suggestions) otherwise."""
    if not wanted.strip():
        raise UsageError("name the model to show")
    with store.reading() as conn:
        model_id = model_id_of(conn, wanted.strip())
        if model_id is None:
            raise not_found("model", wanted, [n for (n,) in conn.exec_driver_sql("SELECT name FROM models")])
        q = mark(conn)
        name, family, n_parameters, release_date, licence, downloads, description, extra = conn.exec_driver_sql(
            "SELECT name, family, n_parameters, release_date, licence, downloads, description, extra FROM models "
            f"WHERE id = {q}", (model_id,)).one()
        aliases = sorted(a for (a,) in conn.exec_driver_sql(f"SELECT alias FROM model_aliases WHERE model_id = {q}", (model_id,)))
        rows = [_record(r) for r in conn.exec_driver_sql(_RECORD_COLUMNS + f"WHERE r.model_id = {q}", (model_id,))]
    rows.sort(key=lambda r: (r["dataset"], r["metric"], r["subset"] or "", r["split"] or "", r["variant"] or "", r["source"]))
    for row in rows:
        del row["model"]
    openness = _extra(extra).get("open_weights")
    return ModelInfo(name, family, n_parameters, release_date, licence, openness if isinstance(openness, bool) else None,
                     downloads, description, [a for a in aliases if a != model_key(name)], _per_source(rows), rows)


def dataset_info(store: Store, wanted: str, metric: str | None = None) -> DatasetInfo:
    """One dataset's metadata and every result on it, best first within each metric (a metric
    where lower is better is sorted that way; one of unknown direction keeps higher first).
    `metric` may be spelt loosely (`ndcg@10` for `ndcg_at_10`) when that picks one of its metrics."""
    if not wanted.strip():
        raise UsageError("name the dataset to show")
    with store.reading() as conn:
        q = mark(conn)
        found = conn.exec_driver_sql(
            f"SELECT id, name, task_type, main_metric, description, extra FROM datasets WHERE name = {q}", (wanted.strip(),)).first()
        if found is None:
            found = conn.exec_driver_sql(
                f"SELECT id, name, task_type, main_metric, description, extra FROM datasets WHERE LOWER(name) = LOWER({q})",
                (wanted.strip(),)).first()
        if found is None:
            raise not_found("dataset", wanted, [n for (n,) in conn.exec_driver_sql("SELECT name FROM datasets")])
        dataset_id, name, task_type, main_metric, description, extra = found
        rows = [_record(r) for r in conn.exec_driver_sql(_RECORD_COLUMNS + f"WHERE r.dataset_id = {q}", (dataset_id,))]
    if metric is not None:
        metrics = sorted({r["metric"] for r in rows})
        spelt = [m for m in metrics if fold_term(m) == fold_term(metric)]
        metric = spelt[0] if metric not in metrics and len(spelt) == 1 else metric
        if metric not in metrics:
            raise NotFoundError(f"dataset {name!r} has no results under metric {metric!r}; it has: {', '.join(metrics) or 'none'}")
        rows = [r for r in rows if r["metric"] == metric]

    def best_first(row: dict) -> tuple:
        sign = -1.0 if row["higher_is_better"] is not False else 1.0
        return (row["metric"] != main_metric, row["metric"], row["subset"] or "", row["split"] or "", sign * row["value"])

    rows.sort(key=best_first)
    for row in rows:
        del row["dataset"]
    meta = _extra(extra)
    langs = meta.get("eval_langs")
    codes = [c for v in langs.values() for c in (v if isinstance(v, list) else [v])] if isinstance(langs, dict) else langs
    languages = sorted({str(c) for c in codes or []}) if isinstance(codes, list) else []
    return DatasetInfo(name, task_type, main_metric, description, languages, _per_source(rows), rows)


def _extra(value: str | None) -> dict:
    try:
        data = json.loads(value) if value else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
