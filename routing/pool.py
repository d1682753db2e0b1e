"""`lensroute pool`: the recommender's Top-K for a task, which of them run here, and the pool of
installed local models ordered by the same ranker (the pool `route calibrate` takes)."""

from __future__ import annotations

from collections.abc import Sequence

from recommender.normalise import model_key
from routing.local_models import LocalModel, installed

# catalogue names of the built-ins, for folders built before manifests carried `catalogue_name`
BUILTIN_CATALOGUE_NAMES = {
    "smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2",
}


def catalogue_name(model: LocalModel) -> str:
    return str(model.manifest.get("catalogue_name") or BUILTIN_CATALOGUE_NAMES.get(model.name) or model.name)


def recommend_pool(description: str, top_k: int, *, task: str | None = None, metric: str | None = None,
                   ranker=None, language: Sequence[str] = (), constraint=None) -> dict:  # type: ignore[no-untyped-def]
    """`constraint` (a `recommender.model_filters.ModelFilter`) applies to the recommendation and
    to the pool of installed models alike."""
    from recommender.errors import NoDataError
    from recommender.ranker import Candidate, Ranker

    ranker = ranker or Ranker.load()
    local = installed()
    by_key = {model_key(catalogue_name(m)): m for m in local}
    try:
        ranking = ranker.rank(description, task=task, metric=metric, top_k=top_k, language=language, constraint=constraint)
        results, query, notes = ranking.results, ranking.query, list(ranking.notes)
    except NoDataError as exc:  # nothing in the catalogue passes the filters: the installed pool may still
        query = ranker.rank(description, task=task, metric=metric, top_k=1, language=language).query
        query["filters"] = constraint.as_json() if constraint is not None else query.get("filters")
        results, notes = [], [f"recommended: {exc}"]
    recommended = []
    for result in results:
        match = by_key.get(model_key(result.model))
        recommended.append({"rank": result.rank, "model": result.model, "score": round(result.score, 6),
                            "known": result.known, "n_parameters": result.n_parameters, "runnable": match is not None,
                            "local_name": None if match is None else match.name})
    pool: list[dict] = []
    if local:
        # an installed model runs here, so its weights are open whatever the catalogue says
        candidates = [Candidate(catalogue_name(m), n_parameters=(m.manifest.get("cost") or {}).get("parameters"),
                                open_weights=True) for m in local]
        try:
            ranked_local = ranker.rank(description, task=task, metric=metric, top_k=0, candidates=candidates,
                                       language=language, constraint=constraint).results
        except NoDataError as exc:  # no installed model passes the filters: the recommendation still stands
            ranked_local = []
            notes.append(f"installed models: {exc}")
        name_of = {catalogue_name(m): m for m in local}
        for result in ranked_local[:top_k]:
            model = name_of[result.model]
            pool.append({"rank": len(pool) + 1, "local_name": model.name, "model": result.model, "kind": model.kind,
                         "score": round(result.score, 6), "known": result.known})
    return {"description": description, "top_k": top_k, "query": query, "recommended": recommended,
            "runnable": [r["local_name"] for r in recommended if r["runnable"]],
            "not_runnable": [r["model"] for r in recommended if not r["runnable"]],
            "pool": pool, "notes": notes + ([] if local else ["no local models are installed: "
                                                                "run `lensroute models build-builtin`"])}
