"""Normalisation rules shared by every importer: model names, metric direction, value scale.

These are deliberately explicit tables and small pure functions: a reviewer can read what a name
is folded to, which metrics are known to be lower-is-better, and how a scale is decided.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

# --- model names -------------------------------------------------------------------------------

_REVISION_SUFFIX = re.compile(r"@[^/@\s]+$")
_WHITESPACE = re.compile(r"\s+")


def fold_term(term: str) -> str:
    """A task or metric name with case and separators folded and `@` read as "at", so that
    `NDCG@10`, `ndcg_at_10` and `ndcg at 10` compare equal."""
    return re.sub(r"[^0-9a-z]+", "", term.casefold().replace("@", "at"))


def fold_name(name: str) -> str:
    """A model or dataset name with case and separators folded, so `bge m3` finds `BAAI/bge-m3`
    and `nf corpus` finds `NFCorpus`; unlike `fold_term`, signs such as `+` stay (HumanEval+ is
    not HumanEval)."""
    return re.sub(r"[\s_\-./]+", "", name.casefold())


def close_names(wanted: str, names: Iterable[str], most: int = 5) -> list[str]:
    """The names a user most likely meant: those containing what was typed (folded, shortest
    first), then close spellings (case folded)."""
    folded = fold_name(wanted)
    by_case: dict[str, str] = {}
    containing = []
    for name in names:
        by_case.setdefault(name.casefold(), name)
        if folded and folded in fold_name(name):
            containing.append(name)
    containing.sort(key=lambda n: (len(n), n))
    close = [by_case[c] for c in difflib.get_close_matches(wanted.casefold(), list(by_case), n=most, cutoff=0.6)]
    return list(dict.fromkeys([*containing[:most], *close]))[:most]


def clean_model_name(name: str) -> str:
    """The display form kept as the canonical name: trimmed, inner whitespace collapsed."""
    return _WHITESPACE.sub(" ", name.strip())


def model_key(name: str) -> str:
    """The alias key two spellings of one model share.

    Folds case and strips a revision suffix (`org/model@main`, `…@<sha>`), the two variations the
    sources really produce. An `org/` prefix is *not* dropped here: a bare name is matched to an
    `org/name` only when exactly one organisation has that name (see `store.writer.resolve_models`).
    """
    return _REVISION_SUFFIX.sub("", clean_model_name(name)).lower()


def bare_key(key: str) -> str:
    """The part after the last `/` of a model key (`baai/bge-small-en` → `bge-small-en`)."""
    return key.rsplit("/", 1)[-1]


def canonical_model_name(raw: str) -> str:
    """The name a newly seen model is stored under: cleaned, revision suffix dropped."""
    return _REVISION_SUFFIX.sub("", clean_model_name(raw))


# --- metric direction --------------------------------------------------------------------------

# Lower-is-better metrics by (lower-cased) name. Anything not here and not flagged by its source
# stays unknown: ranking code must ask, never assume.
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {
        "logloss", "log_loss", "loss", "nll", "perplexity", "ppl", "bits_per_byte", "bpb",
        "rmse", "mse", "mae", "mape", "smape", "wer", "cer", "ter", "error", "error_rate",
        "brier", "brier_score", "ece", "fid", "kid", "lpips", "edit_distance",
        "total_cost", "cost", "cost_usd", "price", "latency", "latency_ms", "seconds_per_case",
        "time", "duration", "memory", "memory_mb", "eer", "miss_rate", "far", "frr",
    }
)
HIGHER_IS_BETTER: frozenset[str] = frozenset(
    {
        "accuracy", "acc", "acc_norm", "balanced_accuracy", "f1", "f1_macro", "f1_micro",
        "f1_weighted", "macro_f1", "micro_f1", "em", "exact_match", "auc", "roc_auc", "auroc",
        "ap", "average_precision", "map", "mrr", "precision", "recall", "bleu", "bleu-4",
        "sacrebleu", "chrf", "rouge", "rouge-1", "rouge-2", "rouge-l", "rougel", "meteor",
        "bertscore", "spearman", "pearson", "cosine_spearman", "cosine_pearson", "kendall",
        "v_measure", "main_score", "score", "win_rate", "length_controlled_winrate",
        "discrete_win_rate", "pass@1", "pass@10", "pass@100", "pass_rate_1", "pass_rate_2",
        "percent_cases_well_formed", "dps", "dps_norm", "model_win_rate", "task_win_rate",
        "mean win rate", "mean score", "success_rate", "success rate", "task success rate",
        "fraction solved", "cot correct", "equivalent (cot)", "wb score", "ifeval strict acc",
        "harmlessness", "matthews_correlation", "mcc", "r2", "ndcg", "hit_rate", "p-mrr",
        "similarity", "throughput",
    }
)
_HIGHER_PREFIXES = (
    "ndcg", "map_at", "mrr_at", "recall_at", "precision_at", "hit_at", "accuracy", "acc_",
    "f1", "pass@", "rouge", "bleu", "cosine_", "euclidean_", "manhattan_", "dot_", "max_",
    "similarity_", "v_measure", "nauc_", "exact_match", "win_rate",
)


@dataclass(frozen=True)
class Direction:
    higher_is_better: bool | None
    origin: str  # source | table | unknown


def direction_from_table(metric: str) -> Direction:
    """The explicit table's verdict for a metric name, or unknown."""
    name = metric.strip().lower()
    if name in LOWER_IS_BETTER:
        return Direction(False, "table")
    if name in HIGHER_IS_BETTER or name.startswith(_HIGHER_PREFIXES):
        return Direction(True, "table")
    return Direction(None, "unknown")


def resolve_direction(metric: str, source_flags: Iterable[bool | None]) -> Direction:
    """A source's own flag wins; the table fills in when no source says; otherwise unknown.

    Conflicting flags from one import mean the metric name is ambiguous: it stays unknown.
    """
    flags = {flag for flag in source_flags if flag is not None}
    if len(flags) == 1:
        return Direction(flags.pop(), "source")
    if len(flags) > 1:
        return Direction(None, "unknown")
    return direction_from_table(metric)


# --- value scale -------------------------------------------------------------------------------

FRACTION, PERCENT, UNBOUNDED = "fraction", "percent", "unbounded"


def detect_scale(min_value: float, max_value: float) -> str:
    """0..1 → fraction; 0..100 with something above 1 → percent; anything else → unbounded.

    Negative values down to -1 stay fractions (cosine Spearman, p-MRR and RewardBench's -0.01
    ties are real); a metric reaching past 100 or below -1 is unbounded (throughput, logloss…).
    """
    if min_value >= -1.0 and max_value <= 1.0:
        return FRACTION
    if min_value >= -1.0 and max_value <= 100.0:
        return PERCENT
    return UNBOUNDED


def combine_scale(old: tuple[float, float] | None, new: tuple[float, float]) -> tuple[float, float]:
    if old is None:
        return new
    return (min(old[0], new[0]), max(old[1], new[1]))


# --- families ----------------------------------------------------------------------------------

_FAMILY_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"llama", "llama"), (r"mistral|mixtral|ministral|codestral", "mistral"),
    (r"qwen|qwq", "qwen"), (r"gemma", "gemma"), (r"gemini", "gemini"), (r"\bphi[-_ ]?\d|/phi", "phi"),
    (r"gpt-?4|gpt-?3|gpt-?5|gpt-oss|\bo[134](-|$)|chatgpt|text-embedding-3|text-embedding-ada", "openai"),
    (r"claude", "claude"), (r"deepseek", "deepseek"), (r"falcon", "falcon"), (r"yi-|/yi", "yi"),
    (r"command|cohere|embed-(english|multilingual)", "cohere"), (r"grok", "grok"),
    (r"olmo|tulu", "olmo"), (r"starcoder", "starcoder"), (r"codegen", "codegen"),
    (r"pythia|gpt-neox|gpt-j", "eleuther"), (r"bloom", "bloom"), (r"opt-\d|/opt", "opt"),
    (r"granite", "granite"), (r"internlm", "internlm"), (r"glm", "glm"), (r"smollm", "smollm"),
    (r"e5-|/e5", "e5"), (r"bge-|/bge", "bge"), (r"gte-|/gte", "gte"), (r"jina", "jina"),
    (r"nomic", "nomic"), (r"minilm", "minilm"), (r"mpnet", "mpnet"), (r"xlm-r|xlm-roberta", "xlm-roberta"),
    (r"roberta", "roberta"), (r"bert", "bert"), (r"t5|sentence-t5|gtr-", "t5"), (r"clip", "clip"),
    (r"stella", "stella"), (r"nv-embed|nvidia", "nvidia"), (r"voyage", "voyage"),
    (r"snowflake|arctic", "arctic"), (r"sfr-", "salesforce"), (r"labse", "labse"),
    (r"multilingual-e5", "e5"), (r"solar", "solar"), (r"vicuna", "vicuna"), (r"zephyr", "zephyr"),
    (r"hermes", "hermes"), (r"dbrx", "dbrx"), (r"jamba", "jamba"), (r"nemotron", "nemotron"),
    (r"autosklearn|auto-sklearn", "auto-sklearn"), (r"h2o", "h2o"), (r"tpot", "tpot"),
    (r"autogluon", "autogluon"), (r"randomforest|random_forest", "random-forest"),
)
_FAMILY_REGEXES = tuple((re.compile(pattern), family) for pattern, family in _FAMILY_PATTERNS)


def family_from_name(name: str) -> str | None:
    """A coarse model family read off the name, for models whose metadata gives none."""
    lowered = name.lower()
    for regex, family in _FAMILY_REGEXES:
        if regex.search(lowered):
            return family
    return None


_SIZE_IN_NAME = re.compile(r"(?:^|[-_/ .])(?:(\d+)x)?(\d+(?:\.\d+)?)([bm])(?=$|[-_/ .])", re.IGNORECASE)


def parameters_from_name(name: str) -> float | None:
    """The parameter count a model name states (`qwen2.5-7b-instruct` → 7e9, `Mixtral-8x7B` → 5.6e10,
    `SmolLM2-135M` → 1.35e8); None when the name states none. Used for candidates the catalogue
    has no metadata for, never to overwrite a recorded size."""
    matches = list(_SIZE_IN_NAME.finditer(name))
    if not matches:
        return None
    experts, number, unit = matches[-1].groups()
    value = float(number) * (1e9 if unit.lower() == "b" else 1e6) * (int(experts) if experts else 1)
    return value if 1e6 <= value <= 1e13 else None
