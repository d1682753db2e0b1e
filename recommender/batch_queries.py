"""Many rankings in one run: `lensroute rank --queries FILE`, for scripts and servers.

Loading the ranker and the text encoder is most of a single `rank`'s time, so a team ranking
models for twenty datasets does it once. Every line of the file is checked before anything is
ranked (a typo in line 19 should not cost eighteen rankings first); a query that fails while
ranking (a named dataset the ranker does not know, say) becomes an `error` line and the others
go on, so one bad query does not lose a batch. Output lines keep the input order and carry the
line number and the query's own `id`, whatever it is.

`--queries -` reads standard input as a stream instead: each line is answered as soon as it
arrives, so another program can keep one lensroute process open and ask it query after query;
a bad line is answered with an `error` line like a failed query, since there is no "before".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from recommender.errors import FormatError, LensrouteError, NotFoundError
from recommender.measured import MeasuredResult, results_of
from recommender.model_filters import ModelFilter
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, no_progress
from recommender.ranker import Candidate, Ranker

FIELDS = ("id", "description", "dataset", "task", "metric", "language", "top_k", "measured")


@dataclass(frozen=True)
class Query:
    line: int
    description: str = ""
    dataset: str | None = None
    task: str | None = None
    metric: str | None = None
    language: tuple[str, ...] = ()
    top_k: int | None = None  # None: the command's --top-k
    id: object = None
    measured: tuple[MeasuredResult, ...] = ()  # results the asker has on this dataset


def _text(value: object, name: str, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise FormatError(f"{where}: {name} must be a string, not {type(value).__name__}")
    return value.strip() or None


def _query(line: int, item: object, where: str) -> Query:
    if not isinstance(item, dict):
        raise FormatError(f"{where}: each line must be a JSON object like {{\"description\": \"…\"}}")
    unknown = sorted(set(item) - set(FIELDS))
    if unknown:
        raise FormatError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; a query has {', '.join(FIELDS)}")
    description = _text(item.get("description"), "description", where) or ""
    dataset = _text(item.get("dataset"), "dataset", where)
    if not description and not dataset:
        raise FormatError(f"{where}: give a description (or the name of a catalogued dataset)")
    language = item.get("language") or ()
    if isinstance(language, str):
        language = (language,)
    if not isinstance(language, list | tuple) or not all(isinstance(x, str) for x in language):
        raise FormatError(f"{where}: language must be a string or a list of strings")
    top_k = item.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise FormatError(f"{where}: top_k must be 0 (all) or a positive whole number")
    measured = item.get("measured") or []
    if not isinstance(measured, list):
        raise FormatError(f"{where}: measured must be a list of {{\"model\", \"value\"}} objects")
    return Query(line, description, dataset, _text(item.get("task"), "task", where),
                 _text(item.get("metric"), "metric", where), tuple(language), top_k, item.get("id"),
                 tuple(results_of(measured, lambda n: f"{where}: measured result {n}")))


def query_from(item: object, where: str) -> Query:
    """One query from an already-decoded JSON object (`lensroute serve`'s /v1/rank body)."""
    return _query(0, item, where)


def parse_line(number: int, raw: str, where: str) -> Query:
    """One query from one line of JSON; FormatError naming `where`."""
    try:
        item = json.loads(raw)
    except ValueError as exc:
        raise FormatError(f"{where}: not JSON ({exc.msg})") from None
    return _query(number, item, where)


def read_queries(path: Path) -> list[Query]:
    """Every query of a JSONL file (blank lines skipped); FormatError naming the first bad line."""
    if not path.is_file():
        raise NotFoundError(f"queries file not found: {path}")
    queries = []
    with path.open(encoding="utf-8-sig") as lines:
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            queries.append(parse_line(number, raw, f"{path.name}:{number}"))
    if not queries:
        raise FormatError(f"{path.name} holds no queries (one JSON object per line: description, dataset, task, …)")
    return queries


def stream_queries(lines: Iterable[str]) -> Iterator[Query | dict]:
    """Queries from a stream as they arrive; a bad line comes out as its `error` object instead."""
    for number, raw in enumerate(lines, 1):
        if raw.strip():
            try:
                yield parse_line(number, raw, f"line {number}")
            except FormatError as exc:
                yield {"line": number, "id": None, "error": str(exc)}


def rank_queries(ranker: Ranker, queries: Iterable[Query | dict], *, top_k: int, task: str | None = None, metric: str | None = None,
                 language: tuple[str, ...] = (), candidates: list[Candidate] | None = None, all_models: bool = False,
                 constraint: ModelFilter | None = None, progress: Progress = no_progress,
                 cancel: CancelToken = NEVER_CANCELLED) -> Iterator[dict]:
    """One output object per query, in order: `rank --json`'s shape plus `line` and `id`, or
    `line`, `id` and `error` for a query that could not be ranked. `top_k`, `task`, `metric` and
    `language` hold for every query that does not give its own. `queries` may be a stream
    (`stream_queries`), whose error objects pass through in their place."""
    total = len(queries) if isinstance(queries, list) else None
    done = 0
    for done, query in enumerate(queries):
        cancel.raise_if_cancelled()
        if isinstance(query, dict):
            yield query
            continue
        progress(done, total, f"line {query.line}")
        head = {"line": query.line, "id": query.id}
        try:
            ranking = ranker.rank(query.description, dataset=query.dataset, task=query.task or task,
                                  metric=query.metric or metric, top_k=top_k if query.top_k is None else query.top_k,
                                  candidates=candidates, all_models=all_models, language=query.language or language,
                                  constraint=constraint, measured=query.measured)
        except LensrouteError as exc:
            yield {**head, "error": str(exc)}
            continue
        yield {**head, **ranking.as_json()}
    progress(total or done, total, "done")
