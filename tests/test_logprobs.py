"""Token log-probabilities (`routing.logprobs`): the model's own log-softmax, the likeliest
alternatives, and each token's exact bytes in OpenAI's shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

from routing.logprobs import TokenTexts, openai_content, token_logprob


def test_a_tokens_logprob_is_the_models_log_softmax_with_the_likeliest_alternatives() -> None:
    logits = np.array([1.0, 3.0, 2.0, -1.0], np.float32)
    norm = math.log(sum(math.exp(v) for v in logits.tolist()))
    entry = token_logprob(logits, 2, top=3)
    assert entry.id == 2 and entry.logprob == pytest.approx(2.0 - norm)
    assert [i for i, _ in entry.top] == [1, 2, 0]  # likeliest first
    assert [lp for _, lp in entry.top] == pytest.approx([3.0 - norm, 2.0 - norm, 1.0 - norm])
    assert token_logprob(logits, 3, top=0).top == ()
    assert len(token_logprob(logits, 0, top=20).top) == 4  # no more alternatives than tokens
    huge = np.array([1000.0, 999.0])  # no overflow: the log-sum-exp is shifted
    assert token_logprob(huge, 0, top=0).logprob == pytest.approx(-math.log1p(math.exp(-1.0)))


def byte_level_tokenizer():  # type: ignore[no-untyped-def]
    """A real byte-level BPE (GPT-2's and SmolLM2's scheme), trained here on a few lines."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(["the café is open", "naïve cafés in Tokyo", "the the the"] * 20, trainer)
    return tokenizer


def test_tokens_carry_their_exact_bytes_and_a_partial_character_reads_as_bytes() -> None:
    tokenizer = byte_level_tokenizer()
    texts = TokenTexts(tokenizer)
    text = "the café — 😀 東京"
    ids = tokenizer.encode(text).ids
    pieces = [texts(i) for i in ids]
    assert b"".join(bytes(raw) for _, raw in pieces) == text.encode()  # every byte, in order, exactly once
    assert ("the", list(b"the")) in pieces and (" café", list(" café".encode())) in pieces  # é: two bytes, one token
    partial = [token for token, raw in pieces if token.startswith("bytes:")]
    assert partial and all(token.startswith("bytes:\\x") for token in partial)  # 😀 and 東京 are split into bytes
    assert all(token.encode() == bytes(raw) for token, raw in pieces if not token.startswith("bytes:"))


def test_the_openai_shape_of_a_token_and_its_alternatives() -> None:
    tokenizer = byte_level_tokenizer()
    texts = TokenTexts(tokenizer)
    the = tokenizer.token_to_id("the")
    entry = token_logprob(np.eye(tokenizer.get_vocab_size())[the] * 5, the, top=2)
    [content] = openai_content([entry], texts)
    assert set(content) == {"token", "logprob", "bytes", "top_logprobs"}
    assert content["token"] == "the" and content["bytes"] == list(b"the") and content["logprob"] < 0
    assert content["top_logprobs"][0] == {"token": "the", "logprob": content["logprob"], "bytes": list(b"the")}
    assert len(content["top_logprobs"]) == 2
