"""Token log-probabilities of a written reply, in OpenAI's chat shape (`logprobs: true`,
`top_logprobs: N`): how sure the model was of each token it wrote, and what else it weighed.

The log-probabilities are the model's own (a log-softmax of its logits), before temperature,
top-p or penalties reshape them for sampling, as vLLM reports them by default: a figure of the
model, not of the decoding options. Each token carries its exact bytes: a byte-level BPE token
(GPT-2's, SmolLM2's) may hold part of a character, which no text can show; its `token` then reads
`bytes:\\xe2\\x80` as OpenAI writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

MAX_TOP_LOGPROBS = 20  # OpenAI's limit


@dataclass(frozen=True)
class TokenLogprob:
    """One written token: its id, its log-probability and the `top` alternatives (id, log-prob),
    likeliest first (the written token among them when it is one of the likeliest)."""

    id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


def token_logprob(logits: np.ndarray, chosen: int, top: int) -> TokenLogprob:
    """The written token's log-probability under the model, and the `top` likeliest tokens'."""
    row = np.asarray(logits, np.float64)
    shift = row.max()
    norm = shift + np.log(np.exp(row - shift).sum())
    alternatives: tuple[tuple[int, float], ...] = ()
    if top:
        best = np.argpartition(-row, top - 1)[:top] if top < row.size else np.arange(row.size)
        best = best[np.argsort(-row[best], kind="stable")]
        alternatives = tuple((int(i), float(row[i] - norm)) for i in best)
    return TokenLogprob(int(chosen), float(row[chosen] - norm), alternatives)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte ↔ printable-character table, inverted: how a byte-level BPE vocabulary
    writes each of the 256 bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


class TokenTexts:
    """A token's text and bytes for the API, from the model's own tokenizer (cached per id)."""

    def __init__(self, tokenizer) -> None:  # type: ignore[no-untyped-def]
        self.tokenizer = tokenizer
        # the decoder's own state, not the whole tokenizer's: serialising SmolLM2's took 42 ms
        decoder = json.loads(tokenizer.decoder.__getstate__()) if tokenizer.decoder is not None else {}
        kinds = {decoder.get("type")} | {d.get("type") for d in decoder.get("decoders") or []}
        self.bytes_of = _byte_decoder() if "ByteLevel" in kinds else None
        self.cache: dict[int, tuple[str, list[int]]] = {}

    def __call__(self, token: int) -> tuple[str, list[int]]:
        if token not in self.cache:
            self.cache[token] = self._text(token)
        return self.cache[token]

    def _text(self, token: int) -> tuple[str, list[int]]:
        piece = self.tokenizer.id_to_token(token) or ""
        if self.bytes_of is not None and all(c in self.bytes_of for c in piece):
            raw = bytes(self.bytes_of[c] for c in piece)
        else:  # WordPiece, SentencePiece, special tokens: the tokenizer's own decoding
            raw = self.tokenizer.decode([token], skip_special_tokens=False).encode()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # part of a character
            text = "bytes:" + "".join(f"\\x{b:02x}" for b in raw)
        return text, list(raw)


def openai_content(entries: list[TokenLogprob], texts: TokenTexts) -> list[dict]:
    """`choices[i].logprobs.content`: per token {token, logprob, bytes, top_logprobs}."""
    def one(token: int, logprob: float) -> dict:
        text, raw = texts(token)
        return {"token": text, "logprob": round(logprob, 6), "bytes": raw}

    return [{**one(e.id, e.logprob), "top_logprobs": [one(i, lp) for i, lp in e.top]} for e in entries]


class StreamedTokens:
    """Which written tokens a streamed piece of text completes: a token goes out with the chunk
    whose text finishes it, never before its text (held-back text may yet be a stop text)."""

    def __init__(self, texts: TokenTexts | None) -> None:
        self.texts = texts
        self.scored: list[TokenLogprob] = []
        self.sent_tokens = 0
        self.sent_chars = 0

    def heard(self, entry: TokenLogprob) -> None:
        self.scored.append(entry)

    def written(self, text: str) -> list[TokenLogprob]:
        """The tokens whose text now lies within what has been sent."""
        self.sent_chars += len(text)
        if self.texts is None:
            return []
        decode = self.texts.tokenizer.decode
        ids = [entry.id for entry in self.scored]
        start = self.sent_tokens
        while self.sent_tokens < len(ids) and len(decode(ids[: self.sent_tokens + 1])) <= self.sent_chars:
            self.sent_tokens += 1
        return self.scored[start : self.sent_tokens]

    def rest(self, scored: list[TokenLogprob] | None) -> list[TokenLogprob]:
        """The reply's tokens not sent yet (those of a stop text are not the reply's)."""
        if self.texts is None or scored is None:
            return []
        return scored[self.sent_tokens :]


@dataclass(frozen=True)
class PromptScore:
    """A prompt's tokens as the model read them: ids, where each starts in the prompt's text, and
    each one's log-probability after the ones before it (None for the first: nothing predicts it)."""

    ids: list[int]
    offsets: list[int]
    scored: list[TokenLogprob | None]


def legacy_block(tokens: list[tuple[int, TokenLogprob | None]], texts: TokenTexts, offsets: list[int]) -> dict:
    """OpenAI's completions `logprobs` over (token id, its log-probability or None): parallel lists
    of the tokens, their log-probabilities, the likeliest alternatives ({token: log-prob}) and
    where each token starts in the choice's text (an echoed prompt's first token has no
    log-probability: nothing before it predicts it, and OpenAI writes null there too)."""
    return {
        "tokens": [texts(token)[0] for token, _ in tokens],
        "token_logprobs": [None if e is None else round(e.logprob, 6) for _, e in tokens],
        "top_logprobs": [None if e is None else {texts(i)[0]: round(lp, 6) for i, lp in e.top} for _, e in tokens],
        "text_offset": offsets,
    }
