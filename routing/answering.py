"""Answering a query with one local model: multiple choice (every kind) or free text (causal LMs).

An embedding model answers a multiple-choice question by the choice whose embedding is closest
to the question's (a weak but real answerer, and the cheapest pool member); a causal LM by the
choice with the highest mean log-probability per token as its reply to the chat-formatted question.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.errors import FormatError, NotFoundError, UsageError
from routing.chat_format import Turn
from routing.local_models import LocalModel
from routing.logprobs import TokenLogprob
from routing.runtime import CausalLM, EmbeddingModel, open_model
from routing.sampling import GREEDY, Sampling


@dataclass
class Question:
    question: str
    choices: list[str]
    answer: int | None = None  # index into choices, when labelled
    # the conversation before this question (a chat's earlier turns): what a causal LM answers in
    # the light of; routing looks at the question alone, as the last user message decides the task
    context: tuple[Turn, ...] = ()

    def as_json(self) -> dict:
        return {"question": self.question, "choices": self.choices, "answer": self.answer}


@dataclass
class Answer:
    model: str
    text: str
    choice: int | None
    seconds: float
    finish_reason: str = "stop"  # "length": a free-text reply cut at its token budget
    prompt_tokens: int = 0  # what the model read: the prompt (and, for a choice, every option)
    completion_tokens: int = 0  # what it wrote (0 for a chosen option)
    logprobs: list[TokenLogprob] | None = None  # per written token, when asked for (free text only)


def _answer_index(value, choices: list[str], where: str) -> int:  # type: ignore[no-untyped-def]
    """An answer given as an index, a letter (A, B, …) or the choice's text."""
    if isinstance(value, bool):
        raise FormatError(f"{where}: answer must be an index, a letter or a choice's text")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper().isalpha():
        index = ord(value.strip().upper()) - ord("A")
    elif isinstance(value, str) and value in choices:
        index = choices.index(value)
    elif isinstance(value, str) and value.strip().isdigit():
        index = int(value.strip())
    else:
        raise FormatError(f"{where}: answer {value!r} is not an index, a letter or one of the choices")
    if not 0 <= index < len(choices):
        raise FormatError(f"{where}: answer {value!r} is outside the {len(choices)} choices")
    return index


def bundled_questions() -> Path:
    """64 general-knowledge multiple-choice questions shipped with lensroute: a pool can be
    calibrated (and the encoder's retrieval benchmarked) before the user has labelled anything."""
    from recommender import paths

    return paths.resources_dir() / "calibration" / "general_mc.jsonl"


def choices_problem(choices: list[str]) -> str | None:
    """What is wrong with a question's answer options, in words (None: nothing). One option is no
    choice; an empty or repeated one makes the scored options ambiguous."""
    if len(choices) == 1:
        return "give at least two choices (or none for a free-text answer)"
    if any(not c.strip() for c in choices):
        return "a choice is empty"
    seen: set[str] = set()
    for choice in choices:
        if choice.strip() in seen:
            return f"the choice {choice.strip()!r} is given twice"
        seen.add(choice.strip())
    return None


def read_questions(path: Path, *, labelled: bool) -> list[Question]:
    """JSONL lines {"question", "choices": [...], "answer"}; `answer` required when `labelled`."""
    if not path.is_file():
        raise NotFoundError(f"no such file: {path}")
    questions: list[Question] = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"{where}: not JSON ({exc.msg})") from exc
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) or not item["question"].strip():
            raise FormatError(f'{where}: each line needs a "question" string')
        choices = item.get("choices") or []
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise FormatError(f'{where}: "choices" must be a list of strings')
        if labelled and len(choices) < 2:
            raise FormatError(f'{where}: a calibration question needs at least two "choices"')
        if problem := choices_problem(choices):
            raise FormatError(f"{where}: {problem}")
        answer = None
        if "answer" in item and item["answer"] is not None and choices:
            answer = _answer_index(item["answer"], choices, where)
        elif labelled:
            raise FormatError(f'{where}: a calibration question needs its "answer"')
        questions.append(Question(item["question"], choices, answer))
    if not questions:
        raise FormatError(f"{path}: no questions")
    return questions


class Answerer:
    """One loaded local model that answers questions (sessions opened once)."""

    def __init__(self, model: LocalModel, device: str = "auto") -> None:
        self.model = model
        self.runtime = open_model(model, device=device)

    @property
    def can_generate(self) -> bool:
        return isinstance(self.runtime, CausalLM)

    def answer(self, question: Question, max_new_tokens: int = 64, on_text: Callable[[str], None] | None = None,
               stop: Sequence[str] = (), sampling: Sampling = GREEDY, draw: int = 0, logprobs: int | None = None,
               on_logprob: Callable[[TokenLogprob], None] | None = None) -> Answer:
        """`on_text` hears a free-text reply as it is written (a chosen option comes whole in
        `Answer`); a free-text reply ends before the first of the `stop` texts it writes and is
        decoded as `sampling` says (a multiple-choice answer is always the best-scored option)."""
        started = time.perf_counter()
        if question.choices:
            if isinstance(self.runtime, EmbeddingModel):
                read = [question.question, *question.choices]
                vectors, _ = self.runtime.encode(read)
                scores = vectors[1:] @ vectors[0]
                tokens = self.runtime.count_tokens(read, add_special=True)
            else:
                # Each option scored as the assistant's whole reply to the bare question (no leading
                # space: the reply starts a line). Listing the options in the prompt, or scoring a
                # letter, measured at chance for SmolLM2-135M on the bundled set (0.20–0.28 vs 0.45).
                prompt = self.runtime.conversation_prompt(question.context, question.question)
                scores = self.runtime.score_options(prompt, question.choices, per_token=True)
                tokens = self.runtime.count_tokens([prompt, *question.choices])
            choice = int(np.argmax(scores))
            return Answer(self.model.name, question.choices[choice], choice, time.perf_counter() - started,
                          prompt_tokens=tokens)
        if not isinstance(self.runtime, CausalLM):
            raise UsageError(f"{self.model.name} is an embedding model: it can answer multiple-choice questions only "
                             "(give --choices)")
        prompt = self.runtime.conversation_prompt(question.context, question.question)
        reply = self.runtime.generate_reply(prompt, max_new_tokens, on_text, stop, sampling, draw, logprobs, on_logprob)
        return Answer(self.model.name, reply.text.strip(), None, time.perf_counter() - started, reply.finish_reason,
                      reply.prompt_tokens, reply.completion_tokens, reply.logprobs)
