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


# what a local model of each kind can answer when routed to (`routing.answering`): an encoder only
# scores given options against the question, a causal LM can also write an answer
ANSWERS = {"embedding": "multiple choice", "causal-lm": "free text and multiple choice"}


def catalogue_name(model: LocalModel) -> str:
    return str(model.manifest.get("catalogue_name") or BUILTIN_CATALOGUE_NAMES.get(model.name) or model.name)


def runs_here(models: Sequence[str], local: Sequence[LocalModel] | None = None) -> dict[str, str]:
    """Which of these catalogue names an installed local model is (name → local name); `local`:
    the installed models when the caller has listed them already."""
    by_key = {model_key(catalogue_name(m)): m.name for m in (installed() if local is None else local)}
    return {name: by_key[model_key(name)] for name in models if model_key(name) in by_key}


def recommend_pool(description: str, top_k: int, *, task: str | None = None, metric: str | None = None,
                   ranker=None, language: Sequence[str] = (), constraint=None) -> dict:  # type: ignore[no-untyped-def]
    """`constraint` (a `recommender.model_filters.ModelFilter`) applies to the recommendation and
    to the pool of installed models alike."""
    from recommender.errors import NoDataError
    from recommender.ranker import Candidate, Ranker

    ranker = ranker or Ranker.load()
    local = installed()
    try:
        ranking = ranker.rank(description, task=task, metric=metric, top_k=top_k, language=language, constraint=constraint)
        results, query, notes = ranking.results, ranking.query, list(ranking.notes)
    except NoDataError as exc:  # nothing in the catalogue passes the filters: the installed pool may still
        query = ranker.rank(description, task=task, metric=metric, top_k=1, language=language).query
        query["filters"] = constraint.as_json() if constraint is not None else query.get("filters")
        results, notes = [], [f"recommended: {exc}"]
    here = runs_here([result.model for result in results], local)
    recommended = [{"rank": result.rank, "model": result.model, "score": round(result.score, 6), "known": result.known,
                    "n_parameters": result.n_parameters, "runnable": result.model in here,
                    "local_name": here.get(result.model)} for result in results]
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
                         "answers": ANSWERS[model.kind], "score": round(result.score, 6), "known": result.known})
    runnable = [r["local_name"] for r in recommended if r["runnable"]]
    # the pool to route over: the recommended models that run here, else the installed pool above, best first
    members = runnable or [p["local_name"] for p in pool]
    command = f"lensroute route calibrate --pool {','.join(members)}" if members else None
    return {"description": description, "top_k": top_k, "query": query, "recommended": recommended,
            "calibrate_command": command, "runnable": runnable,
            "not_runnable": [r["model"] for r in recommended if not r["runnable"]],
            "pool": pool, "notes": notes + ([] if local else ["no local models are installed: "
                                                                "run `lensroute models build-builtin`"])}
