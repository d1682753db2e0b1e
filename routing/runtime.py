"""Running local models with ONNX Runtime: embeddings, answer-option log-likelihoods, generation
with a KV cache (greedy or sampled: `routing.sampling`), prompt scoring. CUDA when present (KV
cache kept on the device through IOBinding), CPU otherwise; one session factory for the whole
program (`recommender.onnx_session`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from recommender.errors import FormatError, RuntimeUnavailableError, UsageError
from recommender.onnx_session import create_session
from routing.chat_format import Turn, for_model
from routing.local_models import LocalModel
from routing.logprobs import PromptScore, TokenLogprob, token_logprob
from routing.sampling import GREEDY, Sampling

log = logging.getLogger("lensroute.runtime")


class Reply(NamedTuple):
    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int  # what the model read (after cutting to its length)
    completion_tokens: int  # what it generated
    logprobs: list[TokenLogprob] | None = None  # per token of `text`, when asked for
    end: TokenLogprob | None = None  # the end token the model wrote, with logprobs asked for (not in `text`)


@dataclass
class Encoded:
    ids: np.ndarray  # [B, T] int64, right-padded
    mask: np.ndarray  # [B, T] int64
    truncated: list[bool]


def _tokenizer(model: LocalModel):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(model.path / "tokenizer.json"))
    except Exception as exc:
        raise FormatError(f"unreadable tokenizer for {model.name}: {str(exc).splitlines()[0]}") from exc
    # a saved tokenizer may carry its own padding/truncation settings: we do both ourselves
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


class _Base:
    def __init__(self, model: LocalModel, device: str = "auto") -> None:
        self.model = model
        self.tokenizer = _tokenizer(model)
        self.session, self.info = create_session(model.path / "model.onnx", device=device)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.vocab_size = int(model.manifest.get("vocab_size") or self.tokenizer.get_vocab_size())

    def count_tokens(self, texts: Sequence[str], add_special: bool = False) -> int:
        """How many tokens these texts are (uncut): what a reply's usage reports as read."""
        return sum(len(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=add_special))

    def tokenize(self, texts: Sequence[str], max_length: int | None = None, add_special: bool = True) -> Encoded:
        limit = max_length or self.model.max_length
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=add_special)
        truncated = [len(e.ids) > limit for e in encodings]
        if any(truncated):
            log.warning("%s: %d input(s) longer than %d tokens were truncated", self.model.name, sum(truncated), limit)
        rows = [e.ids[:limit] for e in encodings]
        width = max(len(r) for r in rows) if rows else 0
        ids = np.zeros((len(rows), max(width, 1)), np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return Encoded(ids, mask, truncated)

    def _check_vocab(self) -> None:
        tokenizer_vocab = self.tokenizer.get_vocab_size()
        if tokenizer_vocab > self.vocab_size:
            raise FormatError(f"{self.model.name}: the tokenizer has {tokenizer_vocab} tokens but the model only "
                              f"{self.vocab_size}: they do not belong together")


class EmbeddingModel(_Base):
    """Sentence embeddings, mean-pooled over the attention mask and L2-normalised."""

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> tuple[np.ndarray, list[bool]]:
        if not texts:
            return np.zeros((0, int(self.model.manifest.get("dim", 0))), np.float32), []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[np.ndarray | None] = [None] * len(texts)
        flags = [False] * len(texts)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = self.tokenize([texts[i] for i in index])
            feeds = {"input_ids": batch.ids, "attention_mask": batch.mask}
            if "token_type_ids" in self.inputs:
                feeds["token_type_ids"] = np.zeros_like(batch.ids)
            result = self.session.run(None, feeds)[0]
            if result.ndim == 3:  # last hidden state: pool here
                weights = batch.mask[..., None].astype(np.float32)
                result = (result * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
            result = result / np.maximum(np.linalg.norm(result, axis=1, keepdims=True), 1e-9)
            for j, i in enumerate(index):
                out[i], flags[i] = result[j], batch.truncated[j]
        return np.stack(out).astype(np.float32), flags  # type: ignore[arg-type]

    def check(self) -> None:
        self._check_vocab()
        vectors, _ = self.encode(["a small check sentence"])
        if not np.isfinite(vectors).all():
            raise FormatError(f"{self.model.name} produced non-finite embeddings")


class CausalLM(_Base):
    """A decoder exported by `routing.llama` (one graph with a stacked KV cache)."""

    def __init__(self, model: LocalModel, device: str = "auto") -> None:
        super().__init__(model, device)
        spec = model.manifest.get("spec") or {}
        try:
            self.layers, self.kv_heads, self.head_dim = int(spec["layers"]), int(spec["kv_heads"]), int(spec["head_dim"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{model.name}: manifest lacks the cache shape (spec.layers, kv_heads, head_dim)") from exc
        self.eos = set(model.manifest.get("eos_token_ids") or [])
        self.prompt_prefix = str(model.manifest.get("prompt_prefix", ""))
        self.prompt_suffix = str(model.manifest.get("prompt_suffix", ""))
        self.chat = for_model(model.path, model.manifest)
        self.on_cuda = self.info.provider == "CUDAExecutionProvider"

    def chat_prompt(self, user: str) -> str:
        return f"{self.prompt_prefix}{user}{self.prompt_suffix}"

    def conversation_prompt(self, context: Sequence[Turn], user: str) -> str:
        """The prompt for a reply to `user` after the earlier turns `context`, in the model's chat
        format; a model without one (an older manifest) gets the last user message alone."""
        if self.chat is None:
            return self.chat_prompt(user)
        return self.chat.render([*context, Turn("user", user)])

    def fitting_context(self, context: Sequence[Turn], user: str, reserve: int) -> tuple[list[Turn], int]:
        """`context` less its oldest turns until the prompt and `reserve` new tokens fit the
        model's length, and how many turns were left out. System turns stay (they say how to
        answer), and what remains starts with a user turn, as a conversation does. A reply budget
        over half the model's length reserves half: a large `max_tokens` should not cost the whole
        conversation (the reply then stops at the model's length)."""
        kept = list(context)
        budget = self.model.max_length - min(reserve, self.model.max_length // 2)
        excess = self.count_tokens([self.conversation_prompt(kept, user)]) - budget
        if excess <= 0 or self.chat is None:
            return kept, 0
        # Drop by each turn's own token count first (one tokenisation per turn, not per drop:
        # 400 turns took 4 s re-tokenising the whole prompt each time), then check exactly.
        sizes = {id(turn): self.count_tokens([self.chat.wrap(turn)]) for turn in kept}
        dropped = 0
        while excess > 0 and (removed := _drop_oldest_exchange(kept)):
            dropped += len(removed)
            excess -= sum(sizes[id(turn)] for turn in removed)
        while self.count_tokens([self.conversation_prompt(kept, user)]) > budget and (removed := _drop_oldest_exchange(kept)):
            dropped += len(removed)
        return kept, dropped

    def _empty_past(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.layers, batch, self.kv_heads, 1, self.head_dim)
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Prefill logits [B, T, V] for right-padded ids."""
        past_key, past_value = self._empty_past(ids.shape[0])
        positions = np.maximum(mask.cumsum(-1) - 1, 0)
        return self.session.run(["logits"], {
            "input_ids": ids, "token_mask": mask, "past_mask": np.zeros((ids.shape[0], 1), np.int64),
            "position_ids": positions, "past_key": past_key, "past_value": past_value})[0]

    def score_options(self, prompt: str, options: Sequence[str], batch_size: int = 8, per_token: bool = False) -> np.ndarray:
        """Sum of log-probabilities of each option's tokens after `prompt` (one per option); with
        `per_token`, their mean (so long options are not penalised for their length).

        The prompt is run once and its KV cache shared by every option (options are short, the
        prompt is not: 2.6× faster than running prompt + option per option on a 4-choice question)."""
        if not options:
            raise UsageError("no answer options to score")
        prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False).ids
        option_ids = [self.tokenizer.encode(o, add_special_tokens=False).ids or [0] for o in options]
        if not prompt_ids or len(prompt_ids) + max(len(o) for o in option_ids) > self.model.max_length:
            return self._score_rows(prompt_ids, option_ids, batch_size, per_token)
        logits, key, value = self._run(np.array([prompt_ids], np.int64), np.ones((1, len(prompt_ids)), np.int64),
                                       np.zeros((1, 1), np.int64), np.arange(len(prompt_ids), dtype=np.int64)[None],
                                       *self._empty_past(1))
        first = logits[0, -1].astype(np.float64)
        first = first - np.logaddexp.reduce(first)
        scores = np.zeros(len(options), np.float64)
        for start in range(0, len(options), batch_size):
            chunk = option_ids[start : start + batch_size]
            ids, mask = right_padded(chunk)
            past_mask = np.concatenate([np.zeros((len(chunk), 1), np.int64),
                                        np.ones((len(chunk), len(prompt_ids)), np.int64)], axis=1)
            positions = len(prompt_ids) + np.maximum(mask.cumsum(-1) - 1, 0)
            option_logits = self._run(ids, mask, past_mask, positions, np.repeat(key, len(chunk), axis=1),
                                      np.repeat(value, len(chunk), axis=1))[0]
            for i, option in enumerate(chunk):
                total = first[option[0]]
                if len(option) > 1:
                    picked = option_logits[i, : len(option) - 1].astype(np.float64)
                    norm = np.logaddexp.reduce(picked, axis=-1)
                    total += float((picked[np.arange(len(option) - 1), np.array(option[1:])] - norm).sum())
                scores[start + i] = total / len(option) if per_token else total
        return scores

    def _run(self, ids: np.ndarray, mask: np.ndarray, past_mask: np.ndarray, positions: np.ndarray,
             past_key: np.ndarray, past_value: np.ndarray) -> list[np.ndarray]:
        return self.session.run(["logits", "present_key", "present_value"], {
            "input_ids": ids, "token_mask": mask, "past_mask": past_mask, "position_ids": positions,
            "past_key": past_key, "past_value": past_value})

    def _score_rows(self, prompt_ids: list[int], option_ids: list[list[int]], batch_size: int,
                    per_token: bool) -> np.ndarray:
        """Prompt + option as one row each, cut to the model's length from the left."""
        limit = self.model.max_length
        scores = np.zeros(len(option_ids), np.float64)
        for start in range(0, len(option_ids), batch_size):
            chunk = option_ids[start : start + batch_size]
            rows = [(prompt_ids + o)[-limit:] for o in chunk]
            ids, mask = right_padded(rows)
            logits = self.forward(ids, mask)
            for i, (row, option) in enumerate(zip(rows, chunk, strict=True)):
                n = min(len(option), len(row) - 1)
                positions = np.arange(len(row) - n - 1, len(row) - 1)
                # log-softmax only where the option's tokens are predicted (the vocabulary is large)
                picked = logits[i, positions].astype(np.float64)
                norm = np.logaddexp.reduce(picked, axis=-1)
                total = float((picked[np.arange(n), np.array(row[len(row) - n :])] - norm).sum())
                scores[start + i] = total / max(n, 1) if per_token else total
        return scores

    def generate(self, prompt: str, max_new_tokens: int = 64) -> str:
        """Greedy decoding with the KV cache (kept on the GPU between steps when on CUDA)."""
        return self.generate_reply(prompt, max_new_tokens)[0]

    def generate_reply(self, prompt: str, max_new_tokens: int = 64, on_text: Callable[[str], None] | None = None,
                       stop: Sequence[str] = (), sampling: Sampling = GREEDY, draw: int = 0,
                       logprobs: int | None = None, on_logprob: Callable[[TokenLogprob], None] | None = None) -> Reply:
        """`generate` with the decoding `sampling` asks for (greedy by default; `draw` numbers the
        replies of one request, so a seeded request's replies differ and each repeats), and why
        it stopped: "stop" (the model ended its reply, or wrote one of the `stop` texts, which is
        not part of the reply) or "length" (it reached `max_new_tokens` or the model's length),
        the two finish reasons an OpenAI-style client expects.
        `on_text` hears the reply as it grows, piece by piece (a streamed answer); a piece is held
        back while it ends inside a multi-byte character, so every piece is whole text, and while
        it could be the start of a stop text, so no part of one is ever sent.
        With `logprobs` (the number of alternatives to keep, 0 or more) each written token's
        log-probability comes in `Reply.logprobs`, and `on_logprob` hears each as it is written
        (before the text it belongs to); the tokens of a stop text are not among them."""
        ids = self.tokenizer.encode(prompt, add_special_tokens=False).ids[-(self.model.max_length - 1) :]
        if not ids:
            raise UsageError("empty prompt")
        import onnxruntime as ort

        stops = [s for s in stop if s]
        hold = max((len(s) for s in stops), default=1) - 1
        device = "cuda" if self.on_cuda else "cpu"
        past_key, past_value = self._empty_past(1)
        tokens = np.array([ids], np.int64)
        past_mask = np.zeros((1, 1), np.int64)
        position = np.arange(len(ids), dtype=np.int64)[None]
        key = ort.OrtValue.ortvalue_from_numpy(past_key, device)
        value = ort.OrtValue.ortvalue_from_numpy(past_value, device)
        picker = sampling.picker(draw)
        scored: list[TokenLogprob] = []
        end: TokenLogprob | None = None
        produced: list[int] = []
        sent, text = 0, ""
        end_token = stop_text = False
        # the reply stops where the model's length does ("length"), as when its budget is spent
        for _ in range(min(max_new_tokens, self.model.max_length - len(ids))):
            logits, key, value = self._step(tokens, past_mask, position, key, value, device)
            row = logits.numpy()[0, -1]
            next_id = picker.pick(row)
            if next_id in self.eos:
                end_token = True
                end = token_logprob(row, next_id, logprobs) if logprobs is not None else None
                break
            produced.append(next_id)
            if logprobs is not None:
                scored.append(token_logprob(row, next_id, logprobs))
                if on_logprob is not None:
                    on_logprob(scored[-1])
            if stops or on_text is not None:
                text = self.tokenizer.decode(produced)
                cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    text, stop_text = text[:cut], True
                    break
                if on_text is not None and not text.endswith("\ufffd") and len(text) - hold > sent:
                    on_text(text[sent : len(text) - hold])
                    sent = len(text) - hold
            past_mask = np.concatenate([past_mask, np.ones((1, tokens.shape[1]), np.int64)], axis=1)
            position = position[:, -1:] + 1
            tokens = np.array([[next_id]], np.int64)
        if not stop_text:
            text = self.tokenizer.decode(produced)
        if on_text is not None and len(text) > sent:
            on_text(text[sent:])
        reason = "stop" if end_token or stop_text else "length"
        if stop_text and scored:  # the tokens that wrote the stop text are not the reply's
            while scored and len(self.tokenizer.decode(produced[: len(scored)])) > len(text):
                scored.pop()
        return Reply(text, reason, len(ids), len(produced) + end_token,  # the end token was generated too
                     scored if logprobs is not None else None, end)

    def score_prompt(self, prompt: str, top: int = 0, chunk: int = 256) -> PromptScore:
        """Each token of `prompt` with its log-probability after the ones before it (and the `top`
        likeliest alternatives): what an echoed completion reports, and how an evaluation harness
        scores a continuation. Read in chunks with the KV cache, so a long prompt never holds
        logits for all its positions at once (2,048 × 49,152 floats would be 400 MB)."""
        encoding = self.tokenizer.encode(prompt, add_special_tokens=False)
        ids, offsets = list(encoding.ids), [start for start, _ in encoding.offsets]
        if not ids:
            raise UsageError("empty prompt")
        if len(ids) > self.model.max_length:
            raise UsageError(f"the prompt is {len(ids)} tokens; {self.model.name} reads at most {self.model.max_length}")
        key, value = self._empty_past(1)
        past_mask = np.zeros((1, 1), np.int64)
        scored: list[TokenLogprob | None] = [None]
        for start in range(0, len(ids), chunk):
            piece = ids[start : start + chunk]
            logits, key, value = self._run(np.array([piece], np.int64), np.ones((1, len(piece)), np.int64), past_mask,
                                           np.arange(start, start + len(piece), dtype=np.int64)[None], key, value)
            past_mask = np.concatenate([past_mask, np.ones((1, len(piece)), np.int64)], axis=1)
            for j in range(len(piece)):
                if start + j + 1 < len(ids):  # position p predicts token p + 1
                    scored.append(token_logprob(logits[0, j], ids[start + j + 1], top))
        return PromptScore(ids, offsets, scored)

    def _step(self, tokens: np.ndarray, past_mask: np.ndarray, position: np.ndarray, key, value,  # type: ignore[no-untyped-def]
              device: str) -> list:  # type: ignore[type-arg]
        """One decoding step through IOBinding: the cache stays where the model runs (on the GPU
        under CUDA), only the logits come back to the CPU."""
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", tokens)
        binding.bind_cpu_input("token_mask", np.ones_like(tokens))
        binding.bind_cpu_input("past_mask", past_mask)
        binding.bind_cpu_input("position_ids", position)
        binding.bind_ortvalue_input("past_key", key)
        binding.bind_ortvalue_input("past_value", value)
        binding.bind_output("logits", "cpu")
        binding.bind_output("present_key", device)
        binding.bind_output("present_value", device)
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()

    def check(self) -> None:
        self._check_vocab()
        logits = self.forward(np.array([[1, 2, 3]], np.int64), np.ones((1, 3), np.int64))
        if logits.shape[-1] < self.tokenizer.get_vocab_size():
            raise FormatError(f"{self.model.name}: the model predicts {logits.shape[-1]} tokens but the tokenizer "
                              f"has {self.tokenizer.get_vocab_size()}: they do not belong together")
        if not np.isfinite(logits).all():
            raise FormatError(f"{self.model.name} produced non-finite logits")


def _drop_oldest_exchange(turns: list[Turn]) -> list[Turn]:
    """Remove the oldest non-system turn and the replies right after it (a reply without its
    question reads as nonsense); returns what was removed (nothing: only system turns left)."""
    cut = next((i for i, turn in enumerate(turns) if turn.role != "system"), None)
    if cut is None:
        return []
    removed = [turns.pop(cut)]
    while cut < len(turns) and turns[cut].role == "assistant":
        removed.append(turns.pop(cut))
    return removed


def right_padded(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask) [B, longest] of token rows padded on the right with 0."""
    ids = np.zeros((len(rows), max(len(r) for r in rows)), np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def open_model(model: LocalModel, device: str = "auto") -> EmbeddingModel | CausalLM:
    if model.kind == "embedding":
        return EmbeddingModel(model, device)
    if model.kind == "causal-lm":
        return CausalLM(model, device)
    raise RuntimeUnavailableError(f"unsupported model kind {model.kind!r}")
