"""`POST /v1/completions`: OpenAI's text-completion endpoint over the routed pool. A prompt is
continued as written, with no chat template, which is what evaluation harnesses and code
completion ask for; each prompt is routed on its own text. With `echo` and `logprobs` the prompt's
own tokens come back scored, so a harness can ask how likely a continuation is
(lm-evaluation-harness's `local-completions` sends `echo: true, max_tokens: 0|1, logprobs: 1`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING

from recommender.errors import LensrouteError
from routing import http_options as opts
from routing.answering import Question
from routing.http_options import ApiError
from routing.logprobs import PromptScore, StreamedTokens, TokenLogprob, TokenTexts, legacy_block
from routing.runtime import Reply
from routing.sampling import Sampling

if TYPE_CHECKING:
    from routing.http_api import Api, EventStream


class _Request:
    """One completions body, read and checked before any model runs."""

    def __init__(self, body: dict) -> None:
        self.stream = opts.flag(body.get("stream"), "stream")
        self.include_usage = opts.include_usage(body.get("stream_options"))
        self.prompts = opts.prompts(body.get("prompt"))
        self.n = opts.replies(body.get("n"))
        opts.unsupported_completion_options(body, self.n)
        self.echo = opts.flag(body.get("echo"), "echo")
        self.budget = opts.completion_budget(body, self.echo)
        self.logprobs = opts.legacy_logprobs(body.get("logprobs"))
        self.stop = opts.stop_texts(body.get("stop"))
        self.sampling: Sampling = opts.sampling(body)
        extra = body.get("lensroute") or {}
        if not isinstance(extra, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, '"lensroute" must be an object like {"cost_weight": 0.5}')
        self.cost_weight = opts.cost_weight(extra.get("cost_weight"))
        self.model = body.get("model")
        self.notes = opts.ignored_options(body)

    @property
    def scores_prompt(self) -> bool:
        return self.echo and self.logprobs is not None


class _Choice:
    """One choice being written: its text so far and where its tokens start, so streamed pieces
    and the whole reply carry the same offsets."""

    def __init__(self, index: int, prompt: str, request: _Request, texts: TokenTexts) -> None:
        self.index, self.prompt, self.request, self.texts = index, prompt, request, texts
        self.base = len(prompt) if request.echo else 0

    def echoed(self, score: PromptScore | None) -> tuple[str, dict | None]:
        """The prompt as the choice's first text, with its tokens scored when asked for."""
        if not self.request.echo:
            return "", None
        if score is None:
            return self.prompt, None
        return self.prompt, legacy_block(list(zip(score.ids, score.scored, strict=True)), self.texts, score.offsets)

    def written(self, scored: list[TokenLogprob], before: list[int], end: TokenLogprob | None = None) -> dict:
        """The legacy block of written tokens `scored`, preceded in the reply by the `before` ids,
        and the `end` token when the model wrote one: it is not in the text, but a harness that
        asked for one token and drops the last entry expects a token there (as vLLM's has)."""
        decode = self.texts.tokenizer.decode
        entries = [*scored, *([end] if end is not None else [])]
        ids, offsets = list(before), []
        for entry in entries:  # where each starts: the length of the text before it (the end token: the text's end)
            offsets.append(self.base + len(decode(ids)) if ids else self.base)
            ids.append(entry.id)
        return legacy_block([(e.id, e) for e in entries], self.texts, offsets)


def _merge(first: dict | None, second: dict | None) -> dict | None:
    if first is None or second is None:
        return first or second
    return {key: first[key] + second[key] for key in first}


def completions(api: Api, body: dict, events: EventStream | None = None) -> dict | None:
    session = api.routing_session()
    request = _Request(body)
    if request.stream and events is None:
        raise ApiError(HTTPStatus.BAD_REQUEST, "streaming needs the HTTP endpoint")
    pinned = opts.pinned(request.model, [m.name for m in session.models])
    if pinned is not None and session.models[pinned].kind != "causal-lm":  # said before any event goes out
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY,
                       f"{session.models[pinned].name} is an embedding model: it does not write text")
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time())}
    routed: list[dict] = []
    choices: list[dict] = []
    read = written = 0
    with api.model_lock:
        try:
            if request.stream:
                assert events is not None
                events.start()
            for i, prompt in enumerate(request.prompts):
                question = Question(prompt, [])
                decision = session.decide(question, request.cost_weight)
                if pinned is not None:
                    decision.chosen = pinned
                member = decision.chosen  # routing chooses among the models that write text
                decided = session.as_json(question, decision, None)
                decided["notes"] = [*decided["notes"], *_length_notes(session, member, i, prompt, request.budget)]
                routed.append({**decided, "pinned": pinned is not None})
                texts = session.token_texts(member)
                assert texts is not None  # a causal LM
                score = session.score_prompt(member, prompt, request.logprobs or 0) if request.scores_prompt else None
                # a streamed prompt's first chunk carries its routing, and the first also the request's notes
                first = {**routed[-1], "sampling": request.sampling.describe(),
                         "notes": [*routed[-1]["notes"], *(request.notes if i == 0 else [])]}
                for j in range(request.n):
                    choice = _Choice(i * request.n + j, prompt, request, texts)
                    model = session.models[member].name
                    if request.stream:
                        assert events is not None
                        reply = _stream_choice(session, member, choice, score, model, head,
                                               first if j == 0 else None, events)
                    else:
                        reply = _write_choice(session, member, choice)
                        text, block = choice.echoed(score)
                        block = _merge(block, choice.written(reply.logprobs, [], reply.end)
                                       if reply.logprobs is not None else None)
                        choices.append({"text": text + reply.text, "index": choice.index, "logprobs": block,
                                        "finish_reason": reply.finish_reason})
                    written += reply.completion_tokens
                read += reply.prompt_tokens
        except LensrouteError as exc:
            if request.stream and events is not None and events.started:
                events.send({"error": {"message": str(exc), "type": "invalid_request_error"}})
                events.done()
                return None
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from exc
    usage = {"prompt_tokens": read, "completion_tokens": written, "total_tokens": read + written}
    models = {r["chosen"]["model"] for r in routed}
    model = models.pop() if len(models) == 1 else "lensroute"
    extra = {"prompts": routed, "sampling": request.sampling.describe(), "notes": request.notes}
    if request.stream:
        assert events is not None
        if request.include_usage:
            events.send({**head, "object": "text_completion", "model": model, "choices": [], "usage": usage})
        events.done()
        return None
    return {**head, "object": "text_completion", "model": model, "choices": choices, "usage": usage,
            "lensroute": extra}


def _length_notes(session, member: int, i: int, prompt: str, budget: int) -> list[str]:  # type: ignore[no-untyped-def]
    """What a prompt longer than the model loses: its beginning (a reply needs room after it)."""
    if budget == 0:  # nothing is written (an echoed prompt that is too long to score is refused)
        return []
    model = session.models[member]
    tokens = session.count_tokens(member, prompt)
    room = model.max_length - min(tokens, model.max_length - 1)
    if tokens < model.max_length and room >= budget:
        return []
    kept = min(tokens, model.max_length - 1)
    return [f"prompt {i} is {tokens} tokens: {model.name} read its last {kept} of them ({model.max_length} at most), "
            f"which leaves room for {min(room, budget)} of the {budget} tokens asked for"]


def _write_choice(session, member: int, choice: _Choice) -> Reply:  # type: ignore[no-untyped-def]
    request = choice.request
    if request.budget == 0:  # the prompt alone, echoed (and scored): nothing is written
        return Reply("", "length", session.count_tokens(member, choice.prompt), 0, [])
    return session.complete(member, choice.prompt, request.budget, stop=request.stop, sampling=request.sampling,
                            draw=choice.index % request.n, logprobs=request.logprobs)


def _stream_choice(session, member: int, choice: _Choice, score: PromptScore | None, model: str,  # type: ignore[no-untyped-def]
                   head: dict, routed: dict | None, events: EventStream) -> Reply:
    """One choice as `text_completion` chunks: the echoed prompt, the text as the model writes
    it (each token's log-probability in the chunk that finishes its text), then the finish reason."""
    request = choice.request

    def chunk(text: str, logprobs: dict | None = None, finish: str | None = None, **extra: object) -> dict:
        return {**head, "object": "text_completion", "model": model,
                "choices": [{"text": text, "index": choice.index, "logprobs": logprobs, "finish_reason": finish}],
                **extra}

    echoed, block = choice.echoed(score)
    events.send(chunk(echoed, block, **({"lensroute": routed} if routed is not None else {})))
    if request.budget == 0:
        reply = _write_choice(session, member, choice)
        events.send(chunk("", None, reply.finish_reason))
        return reply
    tokens = StreamedTokens(choice.texts if request.logprobs is not None else None)

    def piece(text: str) -> None:
        start = tokens.sent_tokens
        scored = tokens.written(text)
        before = [e.id for e in tokens.scored[:start]]
        events.send(chunk(text, choice.written(scored, before) if scored else None))

    hear: Callable[[TokenLogprob], None] | None = tokens.heard if request.logprobs is not None else None
    reply = session.complete(member, choice.prompt, request.budget, piece, request.stop, request.sampling,
                             choice.index % request.n, request.logprobs, hear)
    rest = tokens.rest(reply.logprobs)
    before = [e.id for e in (reply.logprobs or [])[: tokens.sent_tokens]]
    tail = choice.written(rest, before, reply.end) if rest or reply.end is not None else None
    events.send(chunk("", tail, reply.finish_reason))
    return reply
