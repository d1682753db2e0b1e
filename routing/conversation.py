"""A routed conversation: each user message is routed on its own, and the chosen model answers it
in the light of everything said so far (`lensroute route chat`).

Routing per message is what a router is for — a follow-up arithmetic question may suit another
model than the opening chit-chat — so the turns belong to the conversation, not to a model: each
model reads them in its own chat template (`routing.chat_format`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from recommender.errors import UsageError
from recommender.progress import CancelToken
from routing.answering import Question, choices_problem
from routing.chat_format import Turn
from routing.sampling import GREEDY, Sampling
from routing.serve import RoutingSession


class ReplyStopped(Exception):
    """Raised inside the decoder's text callback to stop a reply the user cancelled."""


class Conversation:
    def __init__(self, session: RoutingSession, *, system: str | None = None, max_new_tokens: int = 256,
                 sampling: Sampling = GREEDY) -> None:
        if not any(m.kind == "causal-lm" for m in session.models):
            raise UsageError(f"router {session.saved.name!r} routes over embedding models only "
                             f"({', '.join(m.name for m in session.models)}): a chat needs a model that writes text")
        if max_new_tokens < 1:
            raise UsageError("--max-tokens must be at least 1")
        self.session, self.max_new_tokens, self.sampling = session, max_new_tokens, sampling
        self.system = [Turn("system", system)] if system and system.strip() else []
        self.turns: list[Turn] = []

    def reset(self) -> None:
        """Forget what was said (the system prompt stays)."""
        self.turns = []

    def ask(self, text: str, on_text: Callable[[str], None] | None = None, cancel: CancelToken | None = None,
            on_routed: Callable[[str], None] | None = None, choices: list[str] | None = None) -> dict:
        """Route `text`, answer it after the turns so far, remember both. `on_routed` hears the
        chosen model's name before it answers, `on_text` the reply as it is written; a `cancel`
        set meanwhile stops the reply there, and the part written is kept as the reply (finish
        reason "cancelled"), as a chat client keeps a stopped answer. With `choices` the reply is
        the option the model prefers after the conversation (any pool member may answer)."""
        if not text.strip():
            raise UsageError("the message is empty")
        if choices and (problem := choices_problem(choices)):
            raise UsageError(problem)
        question = Question(text.strip(), [c.strip() for c in choices or []], context=tuple(self.system + self.turns))
        decision = self.session.decide(question)
        fitted, notes = self.session.fit_conversation(decision.chosen, question, self.max_new_tokens)
        if on_routed is not None:
            on_routed(self.session.models[decision.chosen].name)
        written: list[str] = []

        def hear(piece: str) -> None:
            written.append(piece)
            if on_text is not None:
                on_text(piece)
            if cancel is not None and cancel.cancelled:
                raise ReplyStopped

        started = time.perf_counter()
        try:
            answer = self.session.answer_with(decision.chosen, fitted, self.max_new_tokens, hear, sampling=self.sampling)
            reply, reason = answer.text, answer.finish_reason
            usage = {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens}
            if answer.choice is not None and on_text is not None:  # a chosen option arrives whole
                on_text(reply)
        except ReplyStopped:
            reply, reason, usage = "".join(written).strip(), "cancelled", None  # the decoder's count went with it
        seconds = time.perf_counter() - started
        self.turns += [Turn("user", question.question), Turn("assistant", reply)]
        routed = self.session.as_json(question, decision, None)
        return {"message": question.question, "model": routed["chosen"]["model"], "reply": reply,
                "finish_reason": reason, "answer_ms": round(seconds * 1000, 2), "routing_ms": routed["routing_ms"],
                "pool": routed["pool"], "turns": len(self.turns), "usage": usage, "notes": [*routed["notes"], *notes]}
