"""Idempotent bulk writes of record frames and metadata into the catalogue.

The whole comparison happens in polars: incoming rows are joined against the stored rows of the
same source and models, and only new rows are inserted and changed rows updated. Re-importing an
unchanged file therefore writes nothing, which is what makes it several times faster than the
first import. A changed value keeps its predecessor in `record_history`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import repeat
from typing import TYPE_CHECKING

import polars as pl

from recommender import normalise
from recommender.import_report import WriteCounts
from recommender.store import driver

if TYPE_CHECKING:
    from recommender.store.driver import DriverConnection

KEY = ("source_id", "model_id", "dataset_id", "metric_id", "split", "subset", "variant")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- low-level helpers --------------------------------------------------------------------------

_mark = driver.mark
_placeholders = driver.placeholders
_select_in = driver.select_in


def _executemany(conn: DriverConnection, sql: str, rows: Sequence[tuple]) -> None:
    """Driver-level executemany: SQLAlchemy's per-row dict handling costs more than the insert."""
    if rows:
        conn.exec_driver_sql(sql, list(rows))


# --- dimensions ---------------------------------------------------------------------------------


def ensure_sources(conn: DriverConnection, names: Iterable[str], kind: str = "import") -> dict[str, int]:
    names = sorted(set(names))
    found = dict(_select_in(conn, "SELECT name, id FROM sources WHERE name IN ({in})", names))
    missing = [n for n in names if n not in found]
    now = utc_now()
    mark = _placeholders(conn, 3)
    _executemany(conn, f"INSERT INTO sources (name, kind, created_at) VALUES ({mark})",
                 [(n, kind, now) for n in missing])
    if missing:
        found.update(_select_in(conn, "SELECT name, id FROM sources WHERE name IN ({in})", missing))
    return found


def ensure_source_refs(conn: DriverConnection, prefixes: Iterable[str]) -> dict[str, int]:
    prefixes = sorted(set(prefixes))
    found = dict(_select_in(conn, "SELECT prefix, id FROM source_refs WHERE prefix IN ({in})", prefixes))
    missing = [(p,) for p in prefixes if p not in found]
    _executemany(conn, f"INSERT INTO source_refs (prefix) VALUES ({_placeholders(conn, 1)})", missing)
    if missing:
        found.update(_select_in(conn, "SELECT prefix, id FROM source_refs WHERE prefix IN ({in})", [m[0] for m in missing]))
    return found


def split_source_ref(frame: pl.DataFrame, column: str = "source_ref") -> pl.DataFrame:
    """Add (prefix up to and including the last '/', tail): the stored form of a source_ref.

    A ref without '/' is all prefix with an empty tail, so prefix || tail is always the ref.
    One anchored regex replace is 3x cheaper than extract-based splitting here (measured).
    """
    ref = pl.col(column)
    stripped = ref.str.replace(r"[^/]*$", "")
    frame = frame.with_columns(pl.when(stripped == "").then(ref).otherwise(stripped).alias("source_ref_prefix"))
    prefix = pl.col("source_ref_prefix")
    return frame.with_columns(
        pl.when(prefix == ref).then(pl.lit("")).otherwise(ref.str.slice(prefix.str.len_chars())).alias("source_ref_tail")
    )


def ensure_metrics(
    conn: DriverConnection, flags: dict[str, set[bool | None]], counts: WriteCounts
) -> dict[str, int]:
    """Create metrics and settle their direction: a source flag beats the table beats unknown."""
    names = sorted(flags)
    stored = {
        name: (mid, hib, origin)
        for name, mid, hib, origin in _select_in(
            conn,
            "SELECT name, id, higher_is_better, direction_from FROM metrics WHERE name IN ({in})",
            names,
        )
    }
    inserts, updates = [], []
    for name in names:
        new = normalise.resolve_direction(name, flags[name])
        if name not in stored:
            inserts.append((name, new.higher_is_better, new.origin))
            continue
        mid, old_hib, old_origin = stored[name]
        old_hib = None if old_hib is None else bool(old_hib)
        if new.origin == "source" and old_origin == "source" and old_hib != new.higher_is_better:
            counts.warnings.append(
                f"metric {name!r}: sources disagree on its direction; kept the stored one"
            )
        elif (new.origin, old_origin) in {("source", "table"), ("source", "unknown"), ("table", "unknown")}:
            updates.append((new.higher_is_better, new.origin, mid))
    mark = _placeholders(conn, 3)
    _executemany(conn, f"INSERT INTO metrics (name, higher_is_better, direction_from) VALUES ({mark})", inserts)
    q = _mark(conn)
    _executemany(conn, f"UPDATE metrics SET higher_is_better = {q}, direction_from = {q} WHERE id = {q}", updates)
    return dict(_select_in(conn, "SELECT name, id FROM metrics WHERE name IN ({in})", names))


def ensure_datasets(conn: DriverConnection, frame: pl.DataFrame, counts: WriteCounts) -> dict[str, int]:
    """Create datasets seen in records; the first task seen becomes the dataset's task type."""
    has_desc = "dataset_description" in frame.columns
    aggs = [pl.col("task").drop_nulls().first().alias("task")]
    if has_desc:
        aggs.append(pl.col("dataset_description").drop_nulls().first().alias("description"))
    per_dataset = frame.group_by("dataset").agg(aggs)
    names = per_dataset["dataset"].to_list()
    found = dict(_select_in(conn, "SELECT name, id FROM datasets WHERE name IN ({in})", names))
    now = utc_now()
    rows = [
        (r["dataset"], r["task"], r.get("description"), now)
        for r in per_dataset.iter_rows(named=True)
        if r["dataset"] not in found
    ]
    mark = _placeholders(conn, 4)
    _executemany(conn, f"INSERT INTO datasets (name, task_type, description, updated_at) VALUES ({mark})", rows)
    if has_desc:  # fill descriptions that were missing before
        q = _mark(conn)
        fills = [
            (r["description"], now, found[r["dataset"]])
            for r in per_dataset.iter_rows(named=True)
            if r["dataset"] in found and r.get("description")
        ]
        _executemany(conn, f"UPDATE datasets SET description = COALESCE(description, {q}), updated_at = {q} WHERE id = {q}", fills)
    counts.datasets_added += len(rows)
    if rows:
        found.update(_select_in(conn, "SELECT name, id FROM datasets WHERE name IN ({in})", [r[0] for r in rows]))
    return found


def resolve_models(conn: DriverConnection, raw_names: Iterable[str], counts: WriteCounts) -> dict[str, int]:
    """Map raw model names to model ids, creating models and aliases as needed.

    Order of evidence: an existing alias for the folded key (case / revision suffix); for a bare
    name, the single stored `org/name` with that name; otherwise a new model named as given.
    """
    raw_names = sorted(set(raw_names))
    keys = {raw: normalise.model_key(raw) for raw in raw_names}
    aliases = dict(_select_in(conn, "SELECT alias, model_id FROM model_aliases WHERE alias IN ({in})", sorted(set(keys.values()))))
    resolved: dict[str, int] = {raw: aliases[key] for raw, key in keys.items() if key in aliases}
    unresolved = [raw for raw in raw_names if raw not in resolved]
    bare_unresolved = [raw for raw in unresolved if "/" not in keys[raw]]
    org_by_bare: dict[str, set[int]] = {}
    if bare_unresolved:
        wanted = {keys[raw] for raw in bare_unresolved}
        for mid, name in conn.exec_driver_sql(f"SELECT id, name FROM models WHERE name LIKE {_mark(conn)}", ("%/%",)):
            bare = normalise.bare_key(normalise.model_key(name))
            if bare in wanted:
                org_by_bare.setdefault(bare, set()).add(mid)
    new_aliases: list[tuple[str, int, str]] = []
    to_create: dict[str, str] = {}  # key -> canonical display name
    for raw in unresolved:
        key = keys[raw]
        candidates = org_by_bare.get(key, set()) if "/" not in key else set()
        if len(candidates) == 1:
            mid = next(iter(candidates))
            resolved[raw] = mid
            new_aliases.append((key, mid, "org"))
        else:
            to_create.setdefault(key, normalise.canonical_model_name(raw))
    if to_create:
        now = utc_now()
        names = list(to_create.values())
        taken = dict(_select_in(conn, "SELECT name, id FROM models WHERE name IN ({in})", names))
        rows = [(name, normalise.family_from_name(name), now) for name in names if name not in taken]
        mark = _placeholders(conn, 3)
        _executemany(conn, f"INSERT INTO models (name, family, updated_at) VALUES ({mark})", rows)
        counts.models_added += len(rows)
        ids = dict(_select_in(conn, "SELECT name, id FROM models WHERE name IN ({in})", names))
        for key, name in to_create.items():
            new_aliases.append((key, ids[name], "name"))
        for raw in unresolved:
            if raw not in resolved:
                resolved[raw] = ids[to_create[keys[raw]]]
    seen = set()
    unique_aliases = []
    for alias in new_aliases:
        if alias[0] not in seen:
            seen.add(alias[0])
            unique_aliases.append(alias)
    mark = _placeholders(conn, 3)
    _executemany(conn, f"INSERT INTO model_aliases (alias, model_id, kind) VALUES ({mark})", unique_aliases)
    return resolved


# --- records ------------------------------------------------------------------------------------


def _with_ids(conn: DriverConnection, frame: pl.DataFrame, counts: WriteCounts) -> pl.DataFrame:
    flags: dict[str, set[bool | None]] = {}
    for metric, hib in frame.select("metric", "higher_is_better").unique().iter_rows():
        flags.setdefault(metric, set()).add(hib)
    source_ids = ensure_sources(conn, frame["source"].unique().to_list())
    metric_ids = ensure_metrics(conn, flags, counts)
    dataset_ids = ensure_datasets(conn, frame, counts)
    model_ids = resolve_models(conn, frame["model"].unique().to_list(), counts)
    frame = split_source_ref(frame)
    ref_ids = ensure_source_refs(conn, frame["source_ref_prefix"].drop_nulls().unique().to_list())

    def mapped(column: str, ids: dict[str, int], alias: str) -> pl.Expr:
        return pl.col(column).replace_strict(ids, return_dtype=pl.Int64, default=None).alias(alias)

    return frame.select(
        mapped("source", source_ids, "source_id"),
        mapped("model", model_ids, "model_id"),
        mapped("dataset", dataset_ids, "dataset_id"),
        mapped("metric", metric_ids, "metric_id"),
        pl.col("model_revision").fill_null("").alias("variant"),
        pl.col("split").fill_null(""),
        pl.col("subset").fill_null(""),
        pl.col("task").fill_null(""),
        "value",
        "evaluated_at",
        mapped("source_ref_prefix", ref_ids, "source_ref_id"),
        "source_ref_tail",
    )


# Rows turned into Python tuples at a time for the insert. All at once, 121k rows of tuples cost a
# fresh process 0.07 s more in first-touch memory than slices whose memory the next one reuses
# (measured on ../shared/data), and a million rows would hold ~0.5 GB of them.
_INSERT_SLICE = 2_000
_WHOLE_SOURCE_AT = 200  # models in one write above which reading the whole source is cheaper


def _stored_rows(conn: DriverConnection, incoming: pl.DataFrame) -> pl.DataFrame:
    """The stored rows that incoming rows could collide with: same source, same models.

    Only the columns needed to compare are read (the key and the compared values); provenance
    of changed rows is read separately by id. Columns are built directly from the result
    tuples, which is several times cheaper than polars' row-wise constructor.
    """
    schema = {
        "id": pl.Int64, "source_id": pl.Int64, "model_id": pl.Int64, "dataset_id": pl.Int64,
        "metric_id": pl.Int64, "split": pl.String, "subset": pl.String, "variant": pl.String,
        "old_value": pl.Float64, "old_evaluated_at": pl.String, "old_task": pl.String,
    }
    select = ("SELECT id, source_id, model_id, dataset_id, metric_id, split, subset, variant, "
              "value, evaluated_at, task FROM records WHERE source_id = ")
    mark = _mark(conn)
    rows: list[tuple] = []
    for source_id in incoming["source_id"].unique().to_list():
        models = incoming.filter(pl.col("source_id") == source_id)["model_id"].unique().sort().to_list()
        if len(models) > _WHOLE_SOURCE_AT:
            rows.extend(conn.exec_driver_sql(select + mark, (source_id,)).fetchall())
        else:
            rows.extend(_select_in(conn, select + mark + " AND model_id IN ({in})", models, extra=(source_id,)))
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    return pl.DataFrame(dict(zip(schema, columns, strict=True)), schema=schema)


def _update_scales(conn: DriverConnection, frame: pl.DataFrame) -> None:
    per_metric = frame.group_by("source_id", "metric_id").agg(
        pl.col("value").min().alias("lo"), pl.col("value").max().alias("hi"), pl.len().alias("n")
    )
    stored = {
        (s, m): (lo, hi, n)
        for s, m, lo, hi, n in conn.exec_driver_sql(
            "SELECT source_id, metric_id, min_value, max_value, n_values FROM metric_scales"
        )
    }
    upserts_new, upserts_old = [], []
    for s, m, lo, hi, n in per_metric.iter_rows():
        if (s, m) in stored:
            old_lo, old_hi, old_n = stored[(s, m)]
            lo, hi = normalise.combine_scale((old_lo, old_hi), (lo, hi))
            upserts_old.append((normalise.detect_scale(lo, hi), lo, hi, max(old_n, n), s, m))
        else:
            upserts_new.append((s, m, normalise.detect_scale(lo, hi), lo, hi, n))
    mark = _placeholders(conn, 6)
    _executemany(conn, f"INSERT INTO metric_scales (source_id, metric_id, scale, min_value, max_value, n_values) VALUES ({mark})", upserts_new)
    q = _mark(conn)
    _executemany(conn, f"UPDATE metric_scales SET scale = {q}, min_value = {q}, max_value = {q}, n_values = {q} WHERE source_id = {q} AND metric_id = {q}", upserts_old)


def write_records(conn: DriverConnection, frame: pl.DataFrame, *, crawled_at: str | None = None) -> WriteCounts:
    """Insert new records, update changed ones, leave identical ones alone.

    `frame` must already be conformed (see `records.conform`). Runs inside the caller's
    transaction, so a failure anywhere leaves the store as it was.
    """
    counts = WriteCounts()
    if frame.is_empty():
        return counts
    crawled_at = crawled_at or utc_now()
    ided = _with_ids(conn, frame, counts)
    before = ided.height
    ided = ided.unique(subset=list(KEY), keep="last", maintain_order=True)
    counts.rejected.add("duplicate key within the import (kept the last)", before - ided.height)

    stored = _stored_rows(conn, ided)
    joined = ided.join(stored, on=list(KEY), how="left")
    new = joined.filter(pl.col("id").is_null())
    existing = joined.filter(pl.col("id").is_not_null())
    # Provenance (source_ref) follows the value: an identical value from another file is
    # "unchanged" and keeps the provenance it was first stored with.
    changed = existing.filter(
        (pl.col("value") != pl.col("old_value"))
        | pl.col("evaluated_at").ne_missing(pl.col("old_evaluated_at"))
        | (pl.col("task") != pl.col("old_task"))
    )
    counts.added = new.height
    counts.updated = changed.height
    counts.unchanged = existing.height - changed.height

    columns = ("source_id", "model_id", "dataset_id", "metric_id", "variant", "split", "subset",
               "task", "value", "evaluated_at", "source_ref_id", "source_ref_tail")
    # Key order makes the unique index grow at its right edge instead of splitting pages.
    ordered = new.sort(KEY).select(columns)
    mark = _placeholders(conn, len(columns) + 1)
    insert = f"INSERT INTO records ({', '.join(columns)}, crawled_at) VALUES ({mark})"
    for piece in ordered.iter_slices(_INSERT_SLICE):
        _executemany(conn, insert, list(zip(*(piece[c].to_list() for c in columns), repeat(crawled_at, piece.height),
                                            strict=True)))

    if changed.height:
        # Keep what is replaced: copy the old row into record_history before updating it.
        q = _mark(conn)
        _executemany(
            conn,
            "INSERT INTO record_history (record_id, value, evaluated_at, source_ref, crawled_at, replaced_at) "
            f"SELECT r.id, r.value, r.evaluated_at, s.prefix || r.source_ref_tail, r.crawled_at, {q} "
            f"FROM records r LEFT JOIN source_refs s ON s.id = r.source_ref_id WHERE r.id = {q}",
            [(crawled_at, rid) for rid in changed["id"].to_list()],
        )
        q = _mark(conn)
        updates = changed.select(
            "value", "evaluated_at", "source_ref_id", "source_ref_tail", "task", pl.lit(crawled_at), "id"
        ).rows()
        _executemany(
            conn,
            f"UPDATE records SET value = {q}, evaluated_at = {q}, source_ref_id = {q}, source_ref_tail = {q}, "
            f"task = {q}, crawled_at = {q} WHERE id = {q}",
            updates,
        )
    if counts.added or counts.updated:
        _update_scales(conn, ided)
        _bump_generations(conn, ided["source_id"].unique().to_list())
    return counts


def _bump_generations(conn: DriverConnection, source_ids: list[int]) -> None:
    """Invalidate import digests of these sources: their stored rows just changed."""
    q = _mark(conn)
    _executemany(conn, f"UPDATE sources SET generation = generation + 1 WHERE id = {q}", [(s,) for s in source_ids])


# --- metadata -----------------------------------------------------------------------------------

MODEL_META_FIELDS = ("family", "n_parameters", "release_date", "licence", "description", "downloads", "hub_sha")


def write_model_metadata(conn: DriverConnection, rows: list[dict[str, object]], counts: WriteCounts) -> None:
    """Fill model metadata: non-null incoming fields replace stored ones; `extra` dicts merge."""
    if not rows:
        return
    ids = resolve_models(conn, [str(r["model"]) for r in rows], counts)
    stored_extra = dict(_select_in(conn, "SELECT id, extra FROM models WHERE id IN ({in})", sorted(set(ids.values()))))
    q = _mark(conn)
    now = utc_now()
    updates: dict[int, dict[str, object]] = {}
    for row in rows:
        mid = ids[str(row["model"])]
        merged = updates.setdefault(mid, {})
        for name in MODEL_META_FIELDS:
            if row.get(name) is not None:
                merged[name] = row[name]
        if row.get("extra"):
            base = merged.get("extra") or json.loads(stored_extra.get(mid) or "{}")
            base.update(row["extra"])  # type: ignore[arg-type]
            merged["extra"] = base
    for mid, fields in updates.items():
        if not fields:
            continue
        if "extra" in fields:
            fields["extra"] = json.dumps(fields["extra"], sort_keys=True, default=str)
        assignments = ", ".join(f"{name} = {q}" for name in fields)
        conn.exec_driver_sql(
            f"UPDATE models SET {assignments}, updated_at = {q} WHERE id = {q}",
            (*fields.values(), now, mid),
        )


DATASET_META_FIELDS = ("task_type", "description", "main_metric")


def write_dataset_metadata(conn: DriverConnection, rows: list[dict[str, object]], counts: WriteCounts) -> None:
    """Create or enrich datasets from metadata files (MTEB task metadata and the like)."""
    if not rows:
        return
    names = [str(r["dataset"]) for r in rows]
    found = dict(_select_in(conn, "SELECT name, id FROM datasets WHERE name IN ({in})", names))
    now = utc_now()
    q = _mark(conn)
    inserts = []
    for row in rows:
        extra = json.dumps(row["extra"], sort_keys=True, default=str) if row.get("extra") else None
        values = {name: row.get(name) for name in DATASET_META_FIELDS}
        if row["dataset"] in found:
            fields = {k: v for k, v in values.items() if v is not None}
            if extra is not None:
                fields["extra"] = extra
            if fields:
                assignments = ", ".join(f"{name} = {q}" for name in fields)
                conn.exec_driver_sql(
                    f"UPDATE datasets SET {assignments}, updated_at = {q} WHERE id = {q}",
                    (*fields.values(), now, found[row["dataset"]]),
                )
        else:
            found[str(row["dataset"])] = -1
            inserts.append((row["dataset"], *values.values(), extra, now))
    mark = _placeholders(conn, 6)
    _executemany(conn, f"INSERT INTO datasets (name, task_type, description, main_metric, extra, updated_at) VALUES ({mark})", inserts)
    counts.datasets_added += len(inserts)


def record_digest(conn: DriverConnection, unit: str, digest: str, generations: str, counts: str, when: str) -> None:
    q = _mark(conn)
    conn.exec_driver_sql(f"DELETE FROM import_digests WHERE unit = {q}", (unit,))
    conn.exec_driver_sql(
        f"INSERT INTO import_digests (unit, digest, generations, counts, imported_at) VALUES ({q}, {q}, {q}, {q}, {q})",
        (unit, digest, generations, counts, when),
    )
