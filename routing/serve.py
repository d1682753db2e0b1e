"""Route one query: embed it, predict every pool member's score and cost, choose, answer.

The decision uses the saved router and cost model; the chosen model is loaded on first use and
kept (a batch pays each model's load once). For a question without choices only the models that
can generate text are candidates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from recommender.errors import NotFoundError, UsageError
from routing.answering import Answer, Answerer, Question
from routing.calibrate import query_text
from routing.local_models import LocalModel, get
from routing.logprobs import PromptScore, TokenLogprob, TokenTexts
from routing.router_store import SavedRouter, calibrate_command
from routing.routers import decide
from routing.runtime import CausalLM, Reply
from routing.sampling import GREEDY, Sampling


@dataclass
class Decision:
    chosen: int
    predicted: np.ndarray
    cost: np.ndarray
    eligible: np.ndarray
    routing_ms: float
    notes: list[str]


class RoutingSession:
    def __init__(self, saved: SavedRouter, *, cost_weight: float = 0.0, device: str = "auto", encoder=None) -> None:  # type: ignore[no-untyped-def]
        if cost_weight < 0:
            raise UsageError("--cost-weight must be 0 or more")
        self.saved, self.cost_weight, self.device = saved, cost_weight, device
        self.models = [self._member(n) for n in saved.pool]
        if encoder is None:
            from recommender.text_encoder import default_encoder

            encoder = default_encoder()
        self.encoder = encoder
        self._answerers: dict[str, Answerer] = {}
        self._token_texts: dict[int, TokenTexts] = {}

    def _member(self, name: str) -> LocalModel:
        """A pool member, or a NotFoundError saying which router needs it and how to mend that."""
        try:
            return get(name)
        except NotFoundError as exc:
            raise NotFoundError(f"router {self.saved.name!r} routes over {name!r}, which is no longer installed ({exc}): "
                                f"install it again, or calibrate a new pool with `{calibrate_command(self.saved.name)}`") from exc

    def decide(self, question: Question, cost_weight: float | None = None) -> Decision:
        """The routing decision; `cost_weight` (λ) for this question only, else the session's."""
        started = time.perf_counter()
        text = query_text(question)
        notes = []
        if self.encoder.truncates(text):
            notes.append(f"the query is longer than the encoder's {self.encoder.max_length} tokens: routed on its beginning")
        x = self.encoder.encode([text])
        predicted = self.saved.router.predict(x)[0]
        cost = self.saved.cost_model.predict(np.array([float(len(text))]))[0]
        eligible = np.array([bool(question.choices) or m.kind == "causal-lm" for m in self.models])
        if not eligible.any():
            raise UsageError("no pool model can answer a question without choices (the pool has embedding models only); "
                             "give --choices")
        weight = self.cost_weight if cost_weight is None else cost_weight
        chosen = int(decide(predicted[None], cost[None], eligible[None], weight)[0])
        return Decision(chosen, predicted, cost, eligible, (time.perf_counter() - started) * 1000, notes)

    def answer(self, question: Question, max_new_tokens: int = 64,
               sampling: Sampling = GREEDY) -> tuple[Decision, Answer]:
        decision = self.decide(question)
        return decision, self.answer_with(decision.chosen, question, max_new_tokens, sampling=sampling)

    def answer_with(self, member: int, question: Question, max_new_tokens: int = 64,
                    on_text: Callable[[str], None] | None = None, stop: Sequence[str] = (),
                    sampling: Sampling = GREEDY, draw: int = 0, logprobs: int | None = None,
                    on_logprob: Callable[[TokenLogprob], None] | None = None) -> Answer:
        """Answer with one pool member (the chosen one, or one a caller pinned); `on_text` hears
        a free-text reply as it is written, which ends before any of the `stop` texts and is
        decoded as `sampling` says; with `logprobs` its tokens' log-probabilities come along."""
        return self._answerer(member).answer(question, max_new_tokens, on_text, stop, sampling, draw, logprobs,
                                             on_logprob)

    def complete(self, member: int, prompt: str, max_new_tokens: int, on_text: Callable[[str], None] | None = None,
                 stop: Sequence[str] = (), sampling: Sampling = GREEDY, draw: int = 0, logprobs: int | None = None,
                 on_logprob: Callable[[TokenLogprob], None] | None = None) -> Reply:
        """Continue `prompt` as it is, without a chat template (a text completion): what a
        harness that scores or continues raw text asks for."""
        return self._causal(member).generate_reply(prompt, max_new_tokens, on_text, stop, sampling, draw, logprobs,
                                                   on_logprob)

    def count_tokens(self, member: int, text: str) -> int:
        return self._causal(member).count_tokens([text])

    def score_prompt(self, member: int, prompt: str, top: int = 0) -> PromptScore:
        return self._causal(member).score_prompt(prompt, top)

    def _causal(self, member: int) -> CausalLM:
        runtime = self._answerer(member).runtime
        if not isinstance(runtime, CausalLM):
            raise UsageError(f"{self.models[member].name} is an embedding model: it does not write text")
        return runtime

    def token_texts(self, member: int) -> TokenTexts | None:
        """How `member`'s tokens read in the API (None: it writes no tokens), kept per model:
        reading a tokenizer's table takes a few tens of milliseconds."""
        runtime = self._answerer(member).runtime
        if not isinstance(runtime, CausalLM):
            return None
        if member not in self._token_texts:
            self._token_texts[member] = TokenTexts(runtime.tokenizer)
        return self._token_texts[member]

    def _answerer(self, member: int) -> Answerer:
        model = self.models[member]
        if model.name not in self._answerers:
            self._answerers[model.name] = Answerer(model, device=self.device)
        return self._answerers[model.name]

    def fit_conversation(self, member: int, question: Question, max_new_tokens: int) -> tuple[Question, list[str]]:
        """The question with as much of its conversation as `member` can take (its oldest turns
        left out until the prompt and the reply fit its length), and notes on what it did not take."""
        if not question.context:
            return question, []
        model = self.models[member]
        runtime = self._answerer(member).runtime
        if not isinstance(runtime, CausalLM):
            return replace(question, context=()), [f"the earlier messages were not used: {model.name} is an embedding "
                                                   "model and answers from the last user message alone"]
        if runtime.chat is None:
            return replace(question, context=()), [
                f"only the last user message was answered: {model.name}'s manifest has no multi-turn chat format "
                "(a built-in gets one from `lensroute models build-builtin`)"]
        context, dropped = runtime.fitting_context(question.context, question.question, max_new_tokens)
        notes = [f"the {dropped} oldest message(s) were left out to fit {model.name}'s {model.max_length}-token "
                 "length with room for the reply"] if dropped else []
        return replace(question, context=tuple(context)), notes

    def as_json(self, question: Question, decision: Decision, answer: Answer | None) -> dict:
        out = {
            "question": question.question, "choices": question.choices,
            "chosen": {"model": self.models[decision.chosen].name,
                       "answer": None if answer is None else answer.text,
                       "choice": None if answer is None else answer.choice,
                       "answer_ms": None if answer is None else round(answer.seconds * 1000, 2)},
            "pool": [{"model": m.name, "predicted_score": round(float(decision.predicted[j]), 4),
                      "predicted_cost": float(f"{decision.cost[j]:.4g}"), "cost_unit": "s",
                      "eligible": bool(decision.eligible[j])} for j, m in enumerate(self.models)],
            "routing_ms": round(decision.routing_ms, 3), "notes": decision.notes,
        }
        if question.answer is not None and answer is not None and answer.choice is not None:
            out["correct"] = answer.choice == question.answer
        return out


def batch_summary(results: list[dict]) -> str:
    """How many questions went to each model, and the accuracy where questions were labelled."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result["chosen"]["model"]] = counts.get(result["chosen"]["model"], 0) + 1
    line = f"{len(results)} questions routed: " + ", ".join(f"{m} {n}" for m, n in sorted(counts.items()))
    graded = [r["correct"] for r in results if "correct" in r]
    if graded:
        line += f"; accuracy {sum(graded) / len(graded):.3f} on {len(graded)} labelled"
    return line
