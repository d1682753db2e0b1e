"""Reading the task and metric a user typed as names the ranker knows.

People type `retrieval`, `ndcg@10` or `map` where the catalogue says `Retrieval`, `ndcg_at_10` and
`map_at_10`. The reading goes from the surest evidence to the weakest: the name itself; the same
name once case, separators and `@` ("at") are folded; for a metric, the one measured names of that
task that contain what was typed; then the nearest name by meaning — but only when it is close.
The nearest of forty task names to `xyz` is still *some* task, and a confident-looking wrong task
(it used to read `Nope` as the catalogue's placeholder `unknown`, and `zzz` as `Acc` for a retrieval
query) is worse than the honest fallback: the task or metric of the dataset closest to the
description, which the caller supplies. Whatever was not read as typed comes back with a note.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from recommender.normalise import fold_term as fold

# Below these name similarities (all-MiniLM-L6-v2, "task: …" / "metric: …" prompts) a typed name
# matches none of ours. Measured on the full-data ranker: `question answering`→Retrieval 0.65 and
# `summarisation`→Summarization 0.99 are right, `math`→Regression 0.58 and `xyz`→Retrieval 0.52 are
# not; metric names are short, so unrelated ones sit higher (`zzz`→Acc 0.73, `foo`→EM 0.74) while
# right ones clear 0.9 (`accuracy@1`→Accuracy 0.93).
TASK_SIMILARITY = 0.6
METRIC_SIMILARITY = 0.8
PLACEHOLDER_TASKS = frozenset({"unknown", ""})  # what the catalogue stores when a source names no task

Similarity = Callable[[str, Sequence[str]], np.ndarray]  # (typed, known names) → cosine per name


@dataclass(frozen=True)
class Reading:
    """Which known name (0-based index into `known`) a typed term was read as, and how; `index`
    None means nothing matched well enough and the caller falls back."""

    index: int | None
    how: str  # exact | spelling | contains | meaning | none
    similarity: float | None = None
    closest: str | None = None  # the nearest name by meaning, also when it was too far to use


def read_task(wanted: str, tasks: Sequence[str], similarity: Similarity) -> Reading:
    """A typed task among the ranker's tasks; the placeholder `unknown` is never a reading."""
    if wanted in tasks:
        return Reading(tasks.index(wanted), "exact")
    usable = [i for i, t in enumerate(tasks) if t not in PLACEHOLDER_TASKS]
    by_spelling = [i for i in usable if fold(tasks[i]) == fold(wanted)]
    if by_spelling:
        return Reading(by_spelling[0], "spelling")
    return _by_meaning(wanted, tasks, usable, similarity, TASK_SIMILARITY)


def read_metric(wanted: str, metrics: Sequence[str], measured: Sequence[int], elsewhere: Sequence[int],
                similarity: Similarity) -> Reading:
    """A typed metric among the ranker's metrics. `measured`: the metrics measured on datasets of
    the query's task, most used first; `elsewhere`: the others, most used first. Every step looks
    at `measured` before `elsewhere`, so `map` reads as the MAP a retrieval leaderboard reports
    rather than one from another kind of task; the caller says when the reading was never
    measured for the task."""
    if wanted in metrics:
        return Reading(metrics.index(wanted), "exact")
    folded = fold(wanted)
    for tier in (measured, elsewhere):
        by_spelling = [i for i in tier if fold(metrics[i]) == folded]
        if by_spelling:
            return Reading(by_spelling[0], "spelling")
    for tier in (measured, elsewhere) if len(folded) >= 2 else ():  # one letter is in too many names
        containing = [i for i in tier if folded in fold(metrics[i])]
        if containing:
            return Reading(containing[0], "contains")
    among = [*measured, *elsewhere]
    if not among:
        return Reading(None, "none")
    sims = np.asarray(similarity(wanted, [metrics[i] for i in among]), dtype=np.float64)  # one encoder call
    for start, stop in ((0, len(measured)), (len(measured), len(among))):  # measured ones first
        if stop > start:
            best = start + int(np.argmax(sims[start:stop]))
            if sims[best] >= METRIC_SIMILARITY:
                return Reading(among[best], "meaning", float(sims[best]), metrics[among[best]])
    best = int(np.argmax(sims))
    return Reading(None, "none", float(sims[best]), metrics[among[best]])


def _by_meaning(wanted: str, known: Sequence[str], among: list[int], similarity: Similarity, threshold: float) -> Reading:
    if not among:
        return Reading(None, "none")
    sims = np.asarray(similarity(wanted, [known[i] for i in among]), dtype=np.float64)
    best = int(np.argmax(sims))
    value = float(sims[best])
    closest = known[among[best]]
    if value >= threshold:
        return Reading(among[best], "meaning", value, closest)
    return Reading(None, "none", value, closest)


def describe(kind: str, wanted: str, reading: Reading, used: str, fallback: str = "") -> str | None:
    """The note a ranking carries about how a typed name was read (None when read as typed);
    `fallback` says where `used` came from when nothing matched."""
    if reading.how == "exact":
        return None
    if reading.how == "spelling":
        return f"{kind} {wanted!r} read as {used!r}"
    if reading.how == "contains":
        return f"{kind} {wanted!r} read as {used!r}, the most measured {kind} of that name"
    if reading.how == "meaning":
        return (f"{kind} {wanted!r} is unknown to the ranker: using the nearest known {kind} {used!r} "
                f"(name similarity {reading.similarity:.2f})")
    near = f" (the nearest name, {reading.closest!r}, is only {reading.similarity:.2f} similar)" if reading.closest else ""
    return f"{kind} {wanted!r} matches no {kind} the ranker knows{near}: using {used!r}" + (f", {fallback}" if fallback else "")
