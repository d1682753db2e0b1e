"""What a request to `lensroute serve` may ask for, read and checked: each option of OpenAI's
chat and completions bodies (and lensroute's own) becomes a typed value or an `ApiError` that
names it in one line; and the answer pieces those options shape (usage, logprob blocks). Shared
by the chat and the completions endpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

from recommender.errors import UsageError
from routing.answering import Answer, Question, choices_problem
from routing.chat_format import ROLES, Turn
from routing.logprobs import MAX_TOP_LOGPROBS, TokenLogprob, TokenTexts, openai_content
from routing.sampling import Sampling

MAX_TOKENS = 1024  # the most a request may ask a local model to write
MAX_REPLIES = 8  # OpenAI's `n`: each reply is written in turn by one local model
MAX_EMBEDDING_INPUTS = 2048  # texts per embeddings request, as OpenAI allows
DEFAULT_TOKENS = 128
MAX_STOP_TEXTS = 16  # OpenAI takes 4; a harness sends a task's and the model's end texts together
MAX_PROMPTS = 64  # texts per completions request, each routed and continued in turn
COMPLETION_TOKENS = 16  # OpenAI's default max_tokens for a text completion
MAX_LEGACY_LOGPROBS = 5  # OpenAI's limit on the completions endpoint's alternatives per token
ROUTED = ("lensroute", "auto", "router")  # chat `model` values that mean "route it"


class ApiError(Exception):
    """A request the API refuses: its HTTP status and the one-line reason."""

    def __init__(self, status: HTTPStatus, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def question(text: object, choices: object) -> Question:
    if not isinstance(text, str) or not text.strip():
        raise ApiError(HTTPStatus.BAD_REQUEST, "the question is empty: give the text to answer")
    if choices is None:
        choices = []
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise ApiError(HTTPStatus.BAD_REQUEST, "choices must be a list of strings")
    if problem := choices_problem(choices):
        raise ApiError(HTTPStatus.BAD_REQUEST, problem)
    return Question(text.strip(), [c.strip() for c in choices])


def conversation(messages: object) -> tuple[str, list[Turn], list[str]]:
    """The last user message (what is routed and answered), the turns before it (what it is
    answered in the light of) and notes on what was not taken. `developer` is OpenAI's newer name
    for `system`; tool and function results have no place in a local model's template."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(HTTPStatus.BAD_REQUEST, "messages must be a non-empty list of {\"role\", \"content\"}")
    turns: list[Turn] = []
    skipped = 0
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(HTTPStatus.BAD_REQUEST, "each message needs a role and content")
        role = {"developer": "system"}.get(message["role"], message["role"])
        if role in ("tool", "function"):
            skipped += 1
            continue
        if role not in ROLES:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"unknown message role {message['role']!r}: "
                                                   "use system, developer, user or assistant")
        content = message.get("content")
        if isinstance(content, list):  # content parts: the text ones, in order
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if content is None and role == "assistant":  # a reply that only called tools
            skipped += 1
            continue
        if not isinstance(content, str):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{'an' if role == 'assistant' else 'a'} {role} message's content "
                                                   "must be text")
        turns.append(Turn(role, content))
    last = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].role == "user"), None)
    if last is None:
        raise ApiError(HTTPStatus.BAD_REQUEST, "no user message to answer")
    notes = [f"{skipped} tool message(s) and tool call(s) were left out: local models do not call tools"] if skipped else []
    if last < len(turns) - 1:
        notes.append(f"the {len(turns) - 1 - last} message(s) after the last user message were ignored")
    return turns[last].content, turns[:last], notes


def include_usage(options: object) -> bool:
    """OpenAI's `stream_options.include_usage`: the usage as a last streamed chunk."""
    options = options or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise ApiError(HTTPStatus.BAD_REQUEST, 'stream_options must be like {"include_usage": true}')
    return bool(options.get("include_usage"))


def reply_budget(body: dict) -> int:
    """`max_completion_tokens` (OpenAI's newer name) or `max_tokens`; null is not given."""
    budget = next((body[k] for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None), DEFAULT_TOKENS)
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_TOKENS:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"max_tokens must be a whole number from 1 to {MAX_TOKENS}")
    return budget


def replies(value: object) -> int:
    """OpenAI's `n`: how many replies (each written in turn, so a few)."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPLIES:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"n must be a whole number from 1 to {MAX_REPLIES} "
                                               "(the replies are written one after the other)")
    return value


def sampling(body: dict) -> Sampling:
    """The decoding a request asks for. Without a temperature a reply is greedy — the same
    question, the same reply — where OpenAI's default is 1: a local router is easier to trust
    when it is repeatable, and `temperature` turns sampling on. `top_k` is an extension (as
    vLLM and llama.cpp's server take it)."""
    given = {name: body[name] for name in ("temperature", "top_p", "top_k", "frequency_penalty", "presence_penalty",
                                           "seed") if body.get(name) is not None}
    try:
        return Sampling(**given)
    except UsageError as exc:
        raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from exc


def logprobs(body: dict) -> int | None:
    """OpenAI's `logprobs` (true: each written token's log-probability) and `top_logprobs` (how
    many alternatives per token, 0 to 20, only with `logprobs`); None: not asked for."""
    wanted = flag(body.get("logprobs"), "logprobs")
    top = body.get("top_logprobs")
    if top is None:
        return 0 if wanted else None
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"top_logprobs must be a whole number from 0 to {MAX_TOP_LOGPROBS}")
    if not wanted:
        raise ApiError(HTTPStatus.BAD_REQUEST, "top_logprobs needs logprobs: true")
    return top


def logprob_block(scored: list[TokenLogprob] | None, texts: TokenTexts | None) -> dict | None:
    """A choice's `logprobs`: {"content": [...], "refusal": None}, or None when not asked for."""
    if scored is None or texts is None:
        return None
    return {"content": openai_content(scored, texts), "refusal": None}


def with_logprobs(scored: list[TokenLogprob], texts: TokenTexts | None) -> dict:
    """A streamed chat chunk's `logprobs` for the tokens it finishes (none: no key)."""
    if not scored or texts is None:
        return {}
    return {"logprobs": {"content": openai_content(scored, texts), "refusal": None}}


def ignored_options(body: dict) -> list[str]:
    """Notes on the options a request asked for that local decoding of plain text cannot give."""
    notes = []
    unsupported = [name for name in ("tools", "response_format") if body.get(name) not in (None, False, [])]
    if unsupported:
        notes.append(f"{', '.join(unsupported)} ignored: the local models write plain text")
    if body.get("logit_bias"):
        notes.append("logit_bias ignored: token ids differ from one pool model to the next")
    return notes


def stop_texts(value: object) -> list[str]:
    """OpenAI's `stop`: a text or a list of texts that end the reply (not part of it). OpenAI
    takes up to 4; up to 16 are taken here, as vLLM takes more: an evaluation harness sends a
    task's stop texts and the model's end texts together (lm-evaluation-harness: often 5)."""
    if value is None:
        return []
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or len(texts) > MAX_STOP_TEXTS or not all(isinstance(t, str) and t for t in texts):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"stop must be a non-empty text or a list of up to {MAX_STOP_TEXTS} of them")
    return texts


def usage(answers: Sequence[Answer]) -> dict:
    """OpenAI's token usage: what the chosen model read (once: every reply answers the same
    prompt) and wrote, all replies together (a chosen option writes nothing)."""
    read = answers[0].prompt_tokens if answers else 0
    written = sum(answer.completion_tokens for answer in answers)
    return {"prompt_tokens": read, "completion_tokens": written, "total_tokens": read + written}


def cost_weight(value: object) -> float | None:
    """A request's own λ (None: the server's)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ApiError(HTTPStatus.BAD_REQUEST, "cost_weight must be a number, 0 or more")
    return float(value)


def flag(value: object, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{name} must be true or false")
    return value


def pinned(model: object, pool: list[str]) -> int | None:
    """None to route; else the index of the pool member the request names."""
    if model is None or model in ROUTED:
        return None
    if isinstance(model, str) and model in pool:
        return pool.index(model)
    raise ApiError(HTTPStatus.NOT_FOUND, f"model {model!r} is not in the pool ({', '.join(pool)}); "
                                         "\"lensroute\" routes among them", "model_not_found")


# --- the completions endpoint's own ---------------------------------------------------------------


def prompts(value: object) -> list[str]:
    """OpenAI's completions `prompt`: a text or a list of texts. Token ids are refused: which
    model's ids they are is only known after routing, which reads text."""
    texts = [value] if isinstance(value, str) else value
    if isinstance(texts, list) and texts and all(isinstance(t, int | list) for t in texts):
        raise ApiError(HTTPStatus.BAD_REQUEST, "prompt must be text: token ids are not taken, as routing reads text "
                                               "(lm-evaluation-harness: tokenized_requests=False)")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ApiError(HTTPStatus.BAD_REQUEST, "prompt must be a text or a non-empty list of texts")
    if len(texts) > MAX_PROMPTS:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"prompt has {len(texts)} texts; at most {MAX_PROMPTS}")
    if not all(t.strip() for t in texts):
        raise ApiError(HTTPStatus.BAD_REQUEST, "a prompt is empty: give the text to continue")
    return texts


def completion_budget(body: dict, echo: bool) -> int:
    """`max_tokens` of a completion (16 when not given, as OpenAI's); 0 writes nothing, which
    only makes sense with `echo` (scoring the prompt itself)."""
    budget = body.get("max_tokens")
    if budget is None:
        return COMPLETION_TOKENS
    if isinstance(budget, bool) or not isinstance(budget, int) or not 0 <= budget <= MAX_TOKENS:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"max_tokens must be a whole number from 0 to {MAX_TOKENS}")
    if budget == 0 and not echo:
        raise ApiError(HTTPStatus.BAD_REQUEST, "max_tokens 0 writes nothing: give echo: true to score the prompt")
    return budget


def legacy_logprobs(value: object) -> int | None:
    """The completions endpoint's `logprobs`: how many alternatives per token (0 to 5); None: not asked for."""
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LEGACY_LOGPROBS:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"logprobs must be a whole number from 0 to {MAX_LEGACY_LOGPROBS}")
    return value


def unsupported_completion_options(body: dict, n: int) -> None:
    """Options of OpenAI's completions that a local model cannot honour: refused, not ignored,
    as they change what comes back."""
    if body.get("suffix"):
        raise ApiError(HTTPStatus.BAD_REQUEST, "suffix is not supported: the local models continue text, they do not "
                                               "fill a gap")
    best_of = body.get("best_of")
    if best_of is not None and best_of != n:
        raise ApiError(HTTPStatus.BAD_REQUEST, "best_of is not supported: ask for n replies and pick among them")
