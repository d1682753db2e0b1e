"""`lensroute serve`: the router and the ranker over real HTTP on 127.0.0.1 (httpx as the client),
with real local models (the real MiniLM and a tiny Llama) and a real trained ranker."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import REPO


@pytest.fixture
def api(local_pool: list[str], ranker_dir: Path, tmp_path: Path) -> Iterator[str]:
    """A server over a router calibrated on the local pool, in this process; yields its URL."""
    from recommender.ranker import Ranker
    from routing.answering import read_questions
    from routing.calibrate import calibrate
    from routing.http_api import Api, ApiServer
    from routing.router_store import load_router
    from routing.serve import RoutingSession
    from tests.test_routing import small_mc_set

    calibrate(local_pool, read_questions(small_mc_set(tmp_path, 12), labelled=True), device="cpu")
    session = RoutingSession(load_router(), device="cpu")
    lines: list[str] = []
    server = ApiServer(("127.0.0.1", 0), Api(session, None, lambda: Ranker.load(ranker_dir, device="cpu")), log=lines.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
    # one log line per request: method, path, status, time
    assert lines and all(re.fullmatch(r"(GET|POST) /\S* \d{3} [\d.]+ ms", line) for line in lines), lines


def chat(url: str, content: str, **fields: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": content}], **fields},
                      timeout=120)


@pytest.mark.builtin_models
@pytest.mark.slow
def test_the_api_routes_chat_answers_choices_and_ranks(api: str, local_pool: list[str]) -> None:
    health = httpx.get(f"{api}/health").json()
    assert health["status"] == "ok" and health["router"] == "default" and health["pool"] == local_pool
    models = httpx.get(f"{api}/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["lensroute", *local_pool] and models["object"] == "list"

    # OpenAI's chat shape; free text can only go to the causal LM, and a short budget says "length"
    done = chat(api, "Tell me about Paris.", model="lensroute", max_tokens=None, max_completion_tokens=3)  # null: not given
    assert done.status_code == 200, done.text
    reply = done.json()
    assert reply["object"] == "chat.completion" and reply["id"].startswith("chatcmpl-")
    assert reply["model"] == "tiny-llama" and reply["choices"][0]["message"]["role"] == "assistant"
    assert isinstance(reply["choices"][0]["message"]["content"], str) and reply["choices"][0]["finish_reason"] == "length"
    usage = reply["usage"]  # OpenAI's token usage: cut at 3 tokens, so 3 written
    assert usage["completion_tokens"] == 3 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    routed = reply["lensroute"]
    assert routed["chosen"]["model"] == "tiny-llama" and not routed["pinned"]
    assert [m["eligible"] for m in routed["pool"]] == [True, False]  # the encoder cannot write text

    # multiple choice rides along under "lensroute"; a pool member's name pins that member
    picked = chat(api, "Which planet is the Red Planet?", model="all-minilm-l6-v2", temperature=0.7,
                  response_format={"type": "json_object"}, lensroute={"choices": ["Venus", "Mars", "Jupiter"]})
    assert picked.status_code == 200, picked.text
    answer = picked.json()
    assert answer["model"] == "all-minilm-l6-v2" and answer["lensroute"]["pinned"]
    assert answer["choices"][0]["message"]["content"] in {"Venus", "Mars", "Jupiter"}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] == 0 and answer["usage"]["prompt_tokens"] >= 4  # read, wrote nothing
    assert any("temperature, top_p, top_k, penalties and seed ignored: a multiple-choice answer" in note
               for note in answer["lensroute"]["notes"])
    assert "response_format ignored: the local models write plain text" in answer["lensroute"]["notes"]

    # OpenAI's `stop`: the reply ends before the first stop text, which it does not include, streamed or not
    free = chat(api, "Tell me about Paris.", max_tokens=12).json()["choices"][0]["message"]["content"]
    words = free.split()
    assert len(words) >= 4, free
    cut = chat(api, "Tell me about Paris.", max_tokens=12, stop=[words[2], "never-written"]).json()
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert cut["choices"][0]["message"]["content"] == free[: free.index(words[2])].strip()

    # a conversation goes to the model whole, in its chat format: the reply is the model's greedy
    # reply to exactly that prompt; the last user message is what is routed
    from routing.chat_format import ChatFormat, Turn
    from routing.local_models import get
    from routing.runtime import open_model

    tiny = open_model(get("tiny-llama"), device="cpu")
    conversation = [{"role": "developer", "content": "w7 w8"}, {"role": "user", "content": "w9 w10"},
                    {"role": "assistant", "content": "w11"}, {"role": "tool", "content": "w12"},
                    {"role": "user", "content": "w13 w14"}]
    turns = httpx.post(f"{api}/v1/chat/completions", timeout=120, json={"max_tokens": 4, "messages": conversation}).json()
    assert turns["lensroute"]["question"] == "w13 w14" and turns["model"] == "tiny-llama"
    prompt = ChatFormat.from_manifest(get("tiny-llama").manifest).render(
        [Turn("system", "w7 w8"), Turn("user", "w9 w10"), Turn("assistant", "w11"), Turn("user", "w13 w14")])
    assert turns["choices"][0]["message"]["content"] == tiny.generate_reply(prompt, 4).text.strip()
    assert turns["usage"]["prompt_tokens"] == tiny.count_tokens([prompt])  # the whole conversation was read
    assert turns["lensroute"]["notes"] == ["1 tool message(s) and tool call(s) were left out: local models do not "
                                           "call tools"]
    # longer than the model's 64 tokens: the oldest exchanges go first, and the reply says so
    long = [{"role": role, "content": " ".join(f"w{20 + i}" for i in range(8))} for _ in range(6)
            for role in ("user", "assistant")]
    cut = httpx.post(f"{api}/v1/chat/completions", timeout=120,
                     json={"max_tokens": 4, "messages": [*long, {"role": "user", "content": "w40"}]}).json()
    assert any(re.fullmatch(r"the \d+ oldest message\(s\) were left out to fit tiny-llama's 64-token length "
                            r"with room for the reply", note) for note in cut["lensroute"]["notes"]), cut["lensroute"]
    # an embedding model answers from the last message alone, and says so
    pinned = httpx.post(f"{api}/v1/chat/completions", timeout=120, json={
        "model": "all-minilm-l6-v2", "lensroute": {"choices": ["Mars", "Venus"]}, "messages": [
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Which planet is red?"}]}).json()
    assert any("answers from the last user message alone" in note for note in pinned["lensroute"]["notes"])

    # /v1/route: `route answer --json`'s shape; decide_only answers nothing
    decided = httpx.post(f"{api}/v1/route", json={"question": "2 + 2?", "choices": ["3", "4"], "decide_only": True},
                         timeout=60).json()
    assert decided["chosen"]["model"] in local_pool and decided["chosen"]["answer"] is None
    assert {m["model"] for m in decided["pool"]} == set(local_pool)
    assert decided["chosen"]["model"] == max(decided["pool"], key=lambda m: m["predicted_score"])["model"]  # λ = 0
    cheap = httpx.post(f"{api}/v1/route", json={"question": "2 + 2?", "choices": ["3", "4"], "decide_only": True,
                                                "cost_weight": 1e6}, timeout=60).json()  # this request's own λ
    assert cheap["chosen"]["model"] == min(cheap["pool"], key=lambda m: m["predicted_cost"])["model"]

    # /v1/rank: one `rank --queries` line in, `rank --json`'s shape out
    ranked = httpx.post(f"{api}/v1/rank", json={"description": "Python code generation from docstrings", "top_k": 3,
                                                "id": "q1"}, timeout=120)
    assert ranked.status_code == 200, ranked.text
    ranking = ranked.json()
    assert ranking["id"] == "q1" and len(ranking["results"]) == 3 and ranking["model_version"]
    assert {"rank", "model", "score", "known", "evidence"} <= set(ranking["results"][0])
    top = [r["model"] for r in ranking["results"]]
    mine = httpx.post(f"{api}/v1/rank", json={"description": "Python code generation from docstrings", "top_k": 0,
                                              "measured": [{"model": m, "value": v} for m, v in zip(top, (1, 2, 3), strict=True)]},
                      timeout=120)
    assert mine.status_code == 200, mine.text
    assert [r["model"] for r in mine.json()["results"] if r["measured"] is not None] == top[::-1]

    # "stream": true — OpenAI's server-sent chunks: the role with the decision, the text as written, the finish
    def streamed(content: str, **fields: object) -> list[dict]:
        body = {"messages": [{"role": "user", "content": content}], "stream": True, **fields}
        with httpx.stream("POST", f"{api}/v1/chat/completions", json=body, timeout=120) as response:
            assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
            data = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
        assert data[-1] == "[DONE]"
        return [json.loads(item) for item in data[:-1]]

    chunks = streamed("Tell me about Paris.", max_tokens=6)
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "tiny-llama" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant" and chunks[0]["lensroute"]["chosen"]["model"] == "tiny-llama"
    assert len({c["id"] for c in chunks}) == 1 and chunks[-1]["choices"][0]["finish_reason"] == "length"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    whole = chat(api, "Tell me about Paris.", max_tokens=6).json()["choices"][0]["message"]["content"]
    assert len(chunks) >= 3 and text.rstrip() == whole  # the same greedy reply, piece by piece
    stopped = streamed("Tell me about Paris.", max_tokens=6, stop=text.split()[1])
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in stopped).strip() == \
        text[: text.index(text.split()[1])].strip() and stopped[-1]["choices"][0]["finish_reason"] == "stop"
    option = streamed("Which planet is the Red Planet?", lensroute={"choices": ["Venus", "Mars"]})
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in option) in {"Venus", "Mars"}

    # two clients at once: both answered (model work is serialised, not refused)
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda q: chat(api, q, max_tokens=2), ["First?", "Second?"]))
    assert [r.status_code for r in replies] == [200, 200]


@pytest.mark.builtin_models
@pytest.mark.slow
def test_openais_own_client_talks_to_the_server(api: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{api}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["lensroute", "tiny-llama", "all-minilm-l6-v2"]
    done = client.chat.completions.create(model="lensroute", max_tokens=4,
                                          messages=[{"role": "user", "content": "Tell me about Paris."}])
    assert done.model == "tiny-llama" and done.choices[0].finish_reason == "length"
    assert isinstance(done.choices[0].message.content, str) and done.choices[0].message.role == "assistant"
    assert done.model_extra["lensroute"]["chosen"]["model"] == "tiny-llama"  # the decision rides along
    assert done.usage is not None and done.usage.completion_tokens == 4 and done.usage.prompt_tokens > 0
    stream = client.chat.completions.create(model="lensroute", max_tokens=4, stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "Tell me about Paris."}])
    chunks = list(stream)
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert "".join(pieces).rstrip() == done.choices[0].message.content
    assert not chunks[-1].choices and chunks[-1].usage == done.usage  # the usage chunk comes last, as OpenAI's
    scored = client.chat.completions.create(model="lensroute", max_tokens=3, logprobs=True, top_logprobs=2,
                                            messages=[{"role": "user", "content": "Tell me about Paris."}])
    tokens = scored.choices[0].logprobs.content  # parsed into the client's own types
    assert len(tokens) == 3 and all(len(t.top_logprobs) == 2 and t.logprob <= 0 and t.bytes for t in tokens)
    import openai

    with pytest.raises(openai.NotFoundError, match="not in the pool"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])

    # embeddings from any installed embedding model: the client asks for base64 and decodes it
    from routing.local_models import get
    from routing.runtime import open_model

    texts = ["French legal documents", "Red planet"]
    embedded = client.embeddings.create(model="all-minilm-l6-v2", input=texts)
    direct, _ = open_model(get("all-minilm-l6-v2"), device="cpu").encode(texts)
    assert [e.index for e in embedded.data] == [0, 1] and embedded.model == "all-minilm-l6-v2"
    assert np.allclose(np.array([e.embedding for e in embedded.data]), direct, atol=1e-5)
    assert embedded.usage.prompt_tokens == embedded.usage.total_tokens > len(texts)
    floats = httpx.post(f"{api}/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "Red planet",
                                                      "encoding_format": "float"}).json()
    assert np.allclose(floats["data"][0]["embedding"], direct[1], atol=1e-5)
    with pytest.raises(openai.BadRequestError, match="not an embedding model"):
        client.embeddings.create(model="tiny-llama", input="x")
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-encoder", input="x")


@pytest.mark.builtin_models
@pytest.mark.slow
def test_temperature_seed_and_n_sample_repeatable_replies(api: str) -> None:
    from openai import OpenAI

    sampled = {"max_tokens": 8, "temperature": 1.0, "seed": 7, "n": 2}
    first = chat(api, "Tell me about Paris.", **sampled).json()
    texts = [c["message"]["content"] for c in first["choices"]]
    assert [c["index"] for c in first["choices"]] == [0, 1] and texts[0] != texts[1]  # two draws, not one twice
    assert chat(api, "Tell me about Paris.", **sampled).json()["choices"] == first["choices"]  # the seed repeats them
    greedy = chat(api, "Tell me about Paris.", max_tokens=8).json()["choices"][0]["message"]["content"]
    assert greedy not in texts  # the temperature was used, not ignored
    assert first["lensroute"]["sampling"] == "temperature 1, seed 7"
    assert not any("ignored" in note for note in first["lensroute"]["notes"])
    # usage: the prompt read once, both replies' tokens written
    single = chat(api, "Tell me about Paris.", **{**sampled, "n": 1}).json()
    assert first["usage"]["prompt_tokens"] == single["usage"]["prompt_tokens"]
    assert single["choices"][0] == first["choices"][0]  # reply 0 of n is the reply n=1 writes
    assert first["choices"][1]["finish_reason"] == "length"  # so it wrote all 8 tokens
    assert first["usage"]["completion_tokens"] == single["usage"]["completion_tokens"] + 8
    # OpenAI's own client streams the two replies by index; each is the reply the plain request wrote
    client = OpenAI(base_url=f"{api}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="lensroute", stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "Tell me about Paris."}], **sampled)
    pieces: dict[int, str] = {0: "", 1: ""}
    chunks = list(stream)
    for chunk in chunks:
        for choice in chunk.choices:
            pieces[choice.index] += choice.delta.content or ""
    assert [pieces[0].rstrip(), pieces[1].rstrip()] == texts
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == first["usage"]["completion_tokens"]
    # greedy n: the same reply n times, and a note says why
    same = chat(api, "Tell me about Paris.", max_tokens=4, n=2).json()
    assert same["choices"][0]["message"] == same["choices"][1]["message"]
    assert any("greedy decoding writes one reply" in note for note in same["lensroute"]["notes"])


@pytest.mark.builtin_models
@pytest.mark.slow
def test_logprobs_are_the_models_own_and_stream_with_their_tokens(api: str) -> None:
    from routing.local_models import get
    from routing.runtime import open_model

    asked = {"max_tokens": 6, "logprobs": True, "top_logprobs": 3}
    done = chat(api, "Tell me about Paris.", **asked).json()
    reply, block = done["choices"][0]["message"]["content"], done["choices"][0]["logprobs"]
    content = block["content"]
    assert [t["token"] for t in content] == reply.split() and len(content) == 6  # a word-level model: a token a word
    for token in content:  # greedy: the written token is the likeliest, and its alternatives come best first
        assert token["top_logprobs"][0]["token"] == token["token"] and len(token["top_logprobs"]) == 3
        assert token["top_logprobs"][0]["logprob"] == token["logprob"] <= 0
        assert [a["logprob"] for a in token["top_logprobs"]] == sorted((a["logprob"] for a in token["top_logprobs"]),
                                                                       reverse=True)
        assert bytes(token["bytes"]) == token["token"].encode()
    # the same figures as scoring the reply after the prompt with the model directly
    tiny = open_model(get("tiny-llama"), device="cpu")
    direct = tiny.score_options(tiny.conversation_prompt([], "Tell me about Paris."), [reply])[0]
    assert sum(t["logprob"] for t in content) == pytest.approx(direct, abs=1e-4)
    assert chat(api, "Tell me about Paris.", max_tokens=6).json()["choices"][0]["logprobs"] is None  # not asked
    # streamed: each token rides with the chunk that finishes its text; all of them, once, in order
    def streamed(**fields: object) -> list[dict]:
        body = {"messages": [{"role": "user", "content": "Tell me about Paris."}], "stream": True, **asked, **fields}
        with httpx.stream("POST", f"{api}/v1/chat/completions", json=body, timeout=120) as response:
            data = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
        return [json.loads(item)["choices"][0] for item in data[:-1]]

    shown, tokens = "", []
    for choice in streamed():
        shown += choice["delta"].get("content") or ""
        for token in (choice["logprobs"] or {}).get("content", []):
            tokens.append(token)
            assert token["token"] in shown  # never ahead of its text
    assert tokens == content
    # with a stop text: the tokens of the cut reply only (sampled: the greedy reply repeats one word)
    varied = {"temperature": 1.0, "seed": 3, "max_tokens": 8}
    sampled = chat(api, "Tell me about Paris.", **{**asked, **varied}).json()["choices"][0]["message"]["content"]
    stop = next(word for word in sampled.split() if sampled.index(word) > 0)  # a word first written after the start
    cut_words = sampled[: sampled.index(stop)].split()
    stopped = streamed(stop=stop, **varied)
    kept = [t for choice in stopped for t in (choice["logprobs"] or {}).get("content", [])]
    assert [t["token"] for t in kept] == cut_words and cut_words
    assert [t["token"] for t in chat(api, "Tell me about Paris.", stop=stop, **{**asked, **varied}).json()
            ["choices"][0]["logprobs"]["content"]] == cut_words
    # a multiple-choice answer writes no tokens: a note, no logprobs
    picked = chat(api, "Which planet is the Red Planet?", logprobs=True, lensroute={"choices": ["Venus", "Mars"]}).json()
    assert picked["choices"][0]["logprobs"] is None
    assert any("logprobs not given" in note for note in picked["lensroute"]["notes"])


@pytest.mark.builtin_models
@pytest.mark.slow
def test_text_completions_continue_raw_text_and_score_an_echoed_prompt(api: str) -> None:
    from openai import OpenAI

    from routing.local_models import get
    from routing.runtime import open_model

    tiny = open_model(get("tiny-llama"), device="cpu")

    def complete(**body: object) -> dict:
        response = httpx.post(f"{api}/v1/completions", json=body, timeout=120)
        assert response.status_code == 200, response.text
        return response.json()

    # the prompt continued as written (no chat template), with OpenAI's legacy logprobs
    done = complete(prompt="w5 w6 w7", max_tokens=4, logprobs=2)
    [choice] = done["choices"]
    assert done["object"] == "text_completion" and done["id"].startswith("cmpl-") and done["model"] == "tiny-llama"
    assert choice["text"] == tiny.generate_reply("w5 w6 w7", 4).text and choice["finish_reason"] == "length"
    block = choice["logprobs"]
    assert block["tokens"] == choice["text"].split() and len(block["top_logprobs"]) == 4
    assert all(len(top) <= 2 and max(top.values()) == lp for top, lp in zip(block["top_logprobs"],
                                                                             block["token_logprobs"], strict=True))
    assert sum(block["token_logprobs"]) == pytest.approx(tiny.score_options("w5 w6 w7", [choice["text"]])[0], abs=1e-4)
    assert [choice["text"][o:].split()[0] for o in block["text_offset"]] == block["tokens"]  # where each token starts
    assert done["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert done["lensroute"]["prompts"][0]["chosen"]["model"] == "tiny-llama"

    # echo with nothing written: the prompt's own tokens scored, as an evaluation harness asks
    scored = complete(prompt="w5 w6 w7", max_tokens=0, echo=True, logprobs=1)["choices"][0]
    assert scored["text"] == "w5 w6 w7" and scored["finish_reason"] == "length"
    assert scored["logprobs"]["tokens"] == ["w5", "w6", "w7"] and scored["logprobs"]["text_offset"] == [0, 3, 6]
    assert scored["logprobs"]["token_logprobs"][0] is None and scored["logprobs"]["top_logprobs"][0] is None
    assert sum(scored["logprobs"]["token_logprobs"][1:]) == pytest.approx(tiny.score_options("w5", ["w6 w7"])[0],
                                                                          abs=1e-4)
    # echo and a continuation: the prompt's block, then the written tokens', offsets in the whole text
    both = complete(prompt="w5 w6 w7", max_tokens=4, echo=True, logprobs=1)["choices"][0]
    assert both["text"] == "w5 w6 w7" + choice["text"]
    assert both["logprobs"]["tokens"] == ["w5", "w6", "w7", *block["tokens"]]
    assert both["logprobs"]["text_offset"][3:] == [o + len("w5 w6 w7") for o in block["text_offset"]]

    # a reply the model ended: its end token closes the logprobs (not the text), as a harness that
    # asks for one token and drops the last entry expects
    from routing.sampling import Sampling

    seed = next(s for s in range(500)
                if tiny.generate_reply("w5", 30, sampling=Sampling(temperature=2.0, seed=s)).finish_reason == "stop")
    ended = complete(prompt="w5", max_tokens=30, temperature=2.0, seed=seed, logprobs=1)["choices"][0]
    assert ended["finish_reason"] == "stop" and ended["logprobs"]["tokens"] == [*ended["text"].split(), "w1"]
    assert ended["logprobs"]["text_offset"][-1] == len(ended["text"])

    # a prompt longer than the model: its beginning is left out, and a note says how much
    long = complete(prompt=" ".join(["w7"] * 70), max_tokens=4)
    assert long["usage"]["prompt_tokens"] == 63 and long["choices"][0]["finish_reason"] == "length"
    assert "prompt 0 is 70 tokens: tiny-llama read its last 63 of them (64 at most), which leaves room for 1 of the 4" \
        in long["lensroute"]["prompts"][0]["notes"][0]
    refused_long = httpx.post(f"{api}/v1/completions", json={"prompt": " ".join(["w7"] * 70), "max_tokens": 0,
                                                             "echo": True, "logprobs": 0}, timeout=120)
    assert refused_long.status_code == 422 and "reads at most 64" in refused_long.json()["error"]["message"]

    # several prompts, each routed; n replies each, indexed prompt by prompt
    many = complete(prompt=["w5 w6", "w9"], max_tokens=3, n=2, temperature=1.0, seed=1)
    assert [c["index"] for c in many["choices"]] == [0, 1, 2, 3] and len(many["lensroute"]["prompts"]) == 2
    assert many["lensroute"]["sampling"] == "temperature 1, seed 1"

    # streamed: the same text and tokens, piece by piece, then the usage
    body = {"prompt": "w5 w6 w7", "max_tokens": 4, "echo": True, "logprobs": 1, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{api}/v1/completions", json=body, timeout=120) as response:
        data = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert chunks[0]["lensroute"]["chosen"]["model"] == "tiny-llama" and chunks[-1]["choices"] == []
    assert chunks[0]["lensroute"]["sampling"] == "greedy"
    parts = [c["choices"][0] for c in chunks[:-1]]
    assert "".join(p["text"] for p in parts) == both["text"] and parts[-1]["finish_reason"] == "length"
    assert [t for p in parts if p["logprobs"] for t in p["logprobs"]["tokens"]] == both["logprobs"]["tokens"]
    assert [o for p in parts if p["logprobs"] for o in p["logprobs"]["text_offset"]] == both["logprobs"]["text_offset"]
    assert chunks[-1]["usage"]["completion_tokens"] == 4

    # OpenAI's own client reads it
    client = OpenAI(base_url=f"{api}/v1", api_key="unused", max_retries=0)
    parsed = client.completions.create(model="lensroute", prompt="w5 w6 w7", max_tokens=2, logprobs=1, echo=True)
    assert parsed.choices[0].text.startswith("w5 w6 w7") and parsed.choices[0].logprobs.tokens[:3] == ["w5", "w6", "w7"]

    def refused(status: int, words: str, **body: object) -> None:
        response = httpx.post(f"{api}/v1/completions", json=body, timeout=120)
        assert response.status_code == status and words in response.json()["error"]["message"], response.text

    refused(400, "token ids are not taken", prompt=[5, 6, 7])
    refused(400, "token ids are not taken", prompt=[[5, 6], [7]])
    refused(400, "give echo: true", prompt="w5", max_tokens=0)
    refused(400, "logprobs must be a whole number from 0 to 5", prompt="w5", logprobs=6)
    refused(400, "suffix is not supported", prompt="w5", suffix="w9")
    refused(400, "best_of is not supported", prompt="w5", best_of=3)
    refused(400, "a prompt is empty", prompt=["w5", "  "])
    refused(422, "does not write text", prompt="w5", model="all-minilm-l6-v2")


@pytest.mark.builtin_models
@pytest.mark.slow
def test_an_api_key_guards_every_endpoint_but_health(local_pool: list[str]) -> None:
    import openai
    from openai import OpenAI

    from routing.http_api import Api, ApiServer

    server = ApiServer(("127.0.0.1", 0), Api(None, "no router here", lambda: None, api_key="s3cret"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = server.url
        assert httpx.get(f"{url}/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            refused = httpx.get(f"{url}/v1/models", headers=headers)
            assert refused.status_code == 401 and refused.json()["error"]["type"] == "invalid_api_key"
        body = httpx.post(f"{url}/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "x"})
        assert body.status_code == 401  # refused before its body is read; the connection is closed
        client = OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        assert "all-minilm-l6-v2" in [m.id for m in client.models.list()]
        assert len(client.embeddings.create(model="all-minilm-l6-v2", input="x").data[0].embedding) == 384
        with pytest.raises(openai.AuthenticationError):
            OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    finally:
        server.shutdown()
        server.server_close()


def test_one_model_by_name_and_browser_pages_from_allowed_origins() -> None:
    from openai import OpenAI

    from routing.http_api import Api, ApiServer

    def serving(**options: object) -> ApiServer:
        server = ApiServer(("127.0.0.1", 0), Api(None, "no router here", lambda: None, **options))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    server = serving(api_key="k", cors_origins=["http://localhost:3000"])
    try:
        url, key = server.url, {"Authorization": "Bearer k"}
        # OpenAI's GET /v1/models/{model}: what client.models.retrieve asks
        assert OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0).models.retrieve("lensroute").id == "lensroute"
        missing = httpx.get(f"{url}/v1/models/no-such-model", headers=key)
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "model_not_found"
        assert httpx.get(f"{url}/v1/models/lensroute").status_code == 401  # the key guards it too
        # a browser's preflight: no key needed, the allow headers only for the named origin
        asked = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
        preflight = httpx.options(f"{url}/v1/chat/completions", headers=asked)
        assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
        answer = httpx.get(f"{url}/v1/models", headers={**key, "Origin": "http://localhost:3000"})
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "http://localhost:3000"
        refused = httpx.get(f"{url}/v1/models", headers={**key, "Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in refused.headers  # the browser keeps it from that page
        assert "access-control-allow-origin" not in httpx.options(f"{url}/v1/models",
                                                                  headers={"Origin": "http://evil.example"}).headers
    finally:
        server.shutdown()
        server.server_close()
    for options, expected in (({"cors_origins": ["*"]}, "*"), ({}, None)):
        other = serving(**options)
        try:
            got = httpx.get(f"{other.url}/health", headers={"Origin": "http://any.example"}).headers
            assert got.get("access-control-allow-origin") == expected
        finally:
            other.shutdown()
            other.server_close()


@pytest.mark.builtin_models
@pytest.mark.slow
def test_the_api_refuses_bad_requests_in_one_line(api: str) -> None:
    def refused(response: httpx.Response, status: int, words: str) -> None:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert words in error["message"] and "\n" not in error["message"] and error["type"]

    refused(httpx.post(f"{api}/v1/chat/completions", content=b"not json"), 400, "not JSON")
    refused(httpx.post(f"{api}/v1/chat/completions", json=[1, 2]), 400, "JSON object")
    refused(httpx.post(f"{api}/v1/chat/completions", json={"messages": []}), 400, "messages must be")
    refused(httpx.post(f"{api}/v1/chat/completions", json={"messages": [{"role": "system", "content": "x"}]}), 400,
            "no user message")
    refused(httpx.post(f"{api}/v1/chat/completions", json={"messages": [{"role": "narrator", "content": "x"}]}), 400,
            "unknown message role 'narrator'")
    refused(httpx.post(f"{api}/v1/chat/completions", json={"messages": [{"role": ["user"], "content": "x"}]}), 400,
            "each message needs a role")
    refused(httpx.post(f"{api}/v1/chat/completions", json={"messages": [{"role": "assistant", "content": 3},
                                                                        {"role": "user", "content": "hi"}]}), 400,
            "an assistant message's content must be text")
    refused(chat(api, "hi", stream="yes"), 400, "stream must be true or false")
    refused(chat(api, "hi", stream=True, stream_options={"include_usage": "yes"}), 400, "stream_options")
    refused(chat(api, "hi", stop=[f"s{i}" for i in range(17)]), 400, "up to 16")
    refused(chat(api, "hi", stop=""), 400, "stop must be")
    refused(chat(api, "hi", max_tokens=0), 400, "max_tokens")
    refused(chat(api, "hi", temperature=5), 400, "temperature must be a number from 0 to 2")
    refused(chat(api, "hi", top_p=0), 400, "top_p must be")
    refused(chat(api, "hi", seed="x"), 400, "seed must be a whole number")
    refused(chat(api, "hi", n=0), 400, "n must be a whole number from 1 to 8")
    refused(chat(api, "hi", logprobs=True, top_logprobs=21), 400, "top_logprobs must be a whole number from 0 to 20")
    refused(chat(api, "hi", top_logprobs=2), 400, "top_logprobs needs logprobs: true")
    refused(chat(api, "hi", logprobs="yes"), 400, "logprobs must be true or false")
    refused(chat(api, "Q?", n=2, lensroute={"choices": ["a", "b"]}), 400, "n above 1 needs a free-text reply")
    refused(chat(api, "hi", model="gpt-4"), 404, "not in the pool")
    refused(chat(api, "hi", model="all-minilm-l6-v2"), 422, "multiple-choice questions only")
    refused(chat(api, "   "), 400, "question is empty")
    refused(chat(api, "Q?", lensroute={"choices": ["only one"]}), 400, "at least two choices")
    refused(httpx.post(f"{api}/v1/route", json={"question": "Q?", "cost_weight": -1}), 400, "cost_weight")
    refused(httpx.post(f"{api}/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": [1, 2]}), 400,
            "token arrays are not taken")
    refused(httpx.post(f"{api}/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "x", "dimensions": 64}), 400,
            "cannot give 64")
    refused(httpx.post(f"{api}/v1/embeddings", json={"input": "x"}), 400, "model must name")
    from routing.local_models import MANIFEST, get, local_dir

    broken = local_dir() / "broken-encoder"  # an embedding model whose ONNX file is not one
    broken.mkdir(parents=True)
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    (broken / "tokenizer.json").write_bytes((get("all-minilm-l6-v2").path / "tokenizer.json").read_bytes())
    (broken / MANIFEST).write_text(json.dumps({"name": "broken-encoder", "kind": "embedding", "max_length": 256}))
    refused(httpx.post(f"{api}/v1/embeddings", json={"model": "broken-encoder", "input": "x"}), 422,
            "cannot load ONNX model")
    refused(httpx.post(f"{api}/v1/rank", json={"descripton": "typo"}), 400, "unknown field(s) 'descripton'")
    refused(httpx.post(f"{api}/v1/rank", json={"description": "x", "measured": [{"model": "a"}]}), 400,
            "measured result 1: value None is not a number")
    refused(httpx.post(f"{api}/v1/rank", json={"dataset": "no-such-dataset"}, timeout=120), 422, "no-such-dataset")
    refused(httpx.post(f"{api}/v1/chat/completions", content=b"x" * (2 << 20)), 413, "at most")
    refused(httpx.get(f"{api}/v1/nothing"), 404, "no endpoint /v1/nothing")
    refused(httpx.post(f"{api}/health", json={}), 405, "/health takes GET")
    refused(httpx.get(f"{api}/v1/chat/completions"), 405, "takes POST")
    assert httpx.get(f"{api}/health").status_code == 200  # still serving after all of that


def test_serve_without_a_router_still_starts_says_why_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    import os

    process = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", "0"], cwd=REPO,
                               env={**os.environ, "LENSROUTE_API_KEY": "k1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("serving on http://127.0.0.1:") and "no routing (no trained router 'default'" in line
        assert "API key required" in line
        url = line.split()[2]
        health = httpx.get(f"{url}/health", timeout=30).json()  # a liveness probe needs no key
        assert health["router"] is None and "route calibrate" in health["router_error"]
        assert chat(url, "hi").status_code == 401  # the key came from $LENSROUTE_API_KEY
        unavailable = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": "Bearer k1"}, timeout=30,
                                 json={"messages": [{"role": "user", "content": "hi"}]})
        assert unavailable.status_code == 503 and "routing is not available" in unavailable.json()["error"]["message"]
        port = url.rsplit(":", 1)[1]
        busy = subprocess.run([sys.executable, "-m", "app", "serve", "--port", port], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert busy.returncode == 2 and "choose another --port" in busy.stderr
        assert len(busy.stderr.strip().splitlines()) == 1, busy.stderr
        # open to the network without a key: it says so before anything else
        exposed = subprocess.run([sys.executable, "-m", "app", "serve", "--host", "0.0.0.0", "--port", port], cwd=REPO,
                                 capture_output=True, text=True, timeout=60)
        assert exposed.stderr.startswith("warning: listening on 0.0.0.0 without an API key"), exposed.stderr
    finally:
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    assert process.returncode == 0
    err = process.stderr.read()  # type: ignore[union-attr]
    assert "stopped" in err and "Traceback" not in err and "GET /health 200" in err
