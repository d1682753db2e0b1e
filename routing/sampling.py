"""How the next token is chosen: greedy (the default: the same question gets the same reply) or
sampled with temperature, top-k and nucleus (top-p), with OpenAI's frequency and presence
penalties — the options an OpenAI-style client sends and `lensroute route chat` takes.

A seed makes a sampled reply repeatable (the same seed, prompt and model give the same text on
this machine), as OpenAI's `seed` promises on a best-effort basis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recommender.errors import UsageError

MAX_TEMPERATURE = 2.0  # OpenAI's range
MAX_PENALTY = 2.0


@dataclass(frozen=True)
class Sampling:
    """The decoding options of one reply; the defaults are greedy decoding without penalties."""

    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0  # nucleus: the fewest most likely tokens whose probability reaches top_p
    top_k: int = 0  # 0: no limit
    frequency_penalty: float = 0.0  # subtracted from a token's logit per time the reply used it
    presence_penalty: float = 0.0  # subtracted once from a token's logit when the reply used it
    seed: int | None = None

    def __post_init__(self) -> None:
        if problem := self.problem():
            raise UsageError(problem)

    def problem(self) -> str | None:
        """Why these options cannot be decoded with (None: they can), in the API's own names."""
        def number(value: object) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

        if not number(self.temperature) or not 0 <= self.temperature <= MAX_TEMPERATURE:
            return f"temperature must be a number from 0 to {MAX_TEMPERATURE:g} (0: greedy)"
        if not number(self.top_p) or not 0 < self.top_p <= 1:
            return "top_p must be a number above 0 and at most 1"
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            return "top_k must be a whole number, 0 or more (0: no limit)"
        for name in ("frequency_penalty", "presence_penalty"):
            value = getattr(self, name)
            if not number(value) or not -MAX_PENALTY <= value <= MAX_PENALTY:
                return f"{name} must be a number from {-MAX_PENALTY:g} to {MAX_PENALTY:g}"
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            return "seed must be a whole number"
        return None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def penalised(self) -> bool:
        return self.frequency_penalty != 0 or self.presence_penalty != 0

    def describe(self) -> str:
        """One line for logs and notes: what decoded the reply."""
        if self.greedy:
            parts = ["greedy"]
        else:
            parts = [f"temperature {self.temperature:g}"]
            if self.top_p < 1:
                parts.append(f"top-p {self.top_p:g}")
            if self.top_k:
                parts.append(f"top-k {self.top_k}")
            if self.seed is not None:
                parts.append(f"seed {self.seed}")
        if self.frequency_penalty:
            parts.append(f"frequency penalty {self.frequency_penalty:g}")
        if self.presence_penalty:
            parts.append(f"presence penalty {self.presence_penalty:g}")
        return ", ".join(parts)

    def picker(self, draw: int = 0) -> TokenPicker:
        """A picker for one reply; `draw` tells the replies of one request apart (OpenAI's `n`),
        so a seeded request's second reply differs from its first and both are repeatable."""
        return TokenPicker(self, draw)


class TokenPicker:
    """Chooses each next token of one reply and remembers what the reply has used (the penalties
    count the reply's own tokens, as OpenAI's do, not the prompt's)."""

    def __init__(self, sampling: Sampling, draw: int = 0) -> None:
        self.sampling = sampling
        seed = None if sampling.seed is None else [sampling.seed & 0xFFFFFFFFFFFFFFFF, draw]
        self.rng = np.random.default_rng(seed)
        self.counts: dict[int, int] = {}

    def pick(self, logits: np.ndarray) -> int:
        """The next token from one row of logits (the vocabulary's scores)."""
        s = self.sampling
        if s.penalised and self.counts:
            logits = logits.astype(np.float64)  # a copy: the caller's logits stay as they were
            used = np.fromiter(self.counts.keys(), np.int64, len(self.counts))
            times = np.fromiter(self.counts.values(), np.float64, len(self.counts))
            logits[used] -= s.frequency_penalty * times + s.presence_penalty
        chosen = int(np.argmax(logits)) if s.greedy else self._sample(logits)
        self.counts[chosen] = self.counts.get(chosen, 0) + 1
        return chosen

    def _sample(self, logits: np.ndarray) -> int:
        scaled = np.asarray(logits, np.float64) / self.sampling.temperature
        if self.sampling.top_k and self.sampling.top_k < scaled.size:
            # the k best by partition (not a full sort of a 50k vocabulary per token)
            candidates = np.argpartition(scaled, -self.sampling.top_k)[-self.sampling.top_k :]
        else:
            candidates = np.arange(scaled.size)
        weights = np.exp(scaled[candidates] - scaled[candidates].max())
        probs = weights / weights.sum()
        if self.sampling.top_p < 1:
            keep = _nucleus(probs, self.sampling.top_p)
            candidates, probs = candidates[keep], probs[keep] / probs[keep].sum()
        # inverse CDF on one uniform draw: cheap, and the same draw picks the same token
        where = int(np.searchsorted(np.cumsum(probs), self.rng.random() * probs.sum(), side="right"))
        return int(candidates[min(where, len(candidates) - 1)])


def _nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Indices of the fewest likeliest tokens whose probability reaches `top_p` (the token that
    crosses it included), likeliest first. The nucleus is a prefix of the sorted vocabulary, so
    when the `head` likeliest tokens already hold `top_p` only they are sorted: sorting a 49k
    vocabulary per token took 4.6 ms, a quarter of SmolLM2's decoding step on this CPU."""
    head = 256
    while True:
        if head >= probs.size:
            order = np.argsort(-probs, kind="stable")
        else:
            top = np.argpartition(-probs, head)[:head]
            if probs[top].sum() < top_p:
                head *= 4
                continue
            order = top[np.argsort(-probs[top], kind="stable")]
        mass = np.cumsum(probs[order])
        return order[: min(int(np.searchsorted(mass, top_p)) + 1, order.size)]


GREEDY = Sampling()
