"""What `lensroute serve` adds to a routing decision and a ranking: the same calls in process and
over HTTP on 127.0.0.1 (one keep-alive httpx client), timed in this run.

    .venv/bin/python tests/bench/bench_serve.py [--repeats 3]

Uses $LENSROUTE_HOME's default router (`lensroute route calibrate` first) and ranker. Routing
queries are the 64 bundled questions with their choices (`decide_only`: the decision, not the
answering model), as asked again (the encoder's cache answers the embedding) and as new text
(each call's question made unique); rankings are ten dataset descriptions; embeddings are the
64 questions one at a time with the built-in MiniLM; scoring is 16 question-and-answer texts sent
to /v1/completions as lm-evaluation-harness sends them (echo, logprobs, one token) when the pool
holds SmolLM2. Prints medians and p90s and the HTTP / in-process ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

DESCRIPTIONS = [
    "Retrieve passages that answer questions about French legal documents",
    "Classify the sentiment of Japanese product reviews",
    "Write Python functions from docstrings that pass unit tests",
    "Grade-school math word problems",
    "Cluster scientific paper abstracts by field",
    "Detect toxic comments in German social media posts",
    "Find duplicate questions on a programming forum",
    "Summarise news articles in one sentence",
    "Answer multiple-choice questions about high-school biology",
    "Rerank search results for e-commerce queries",
]


def times_ms(calls: list[Callable[[], object]], repeats: int) -> list[float]:
    for call in calls[:2]:
        call()  # warm-up: first-call allocations and caches
    out = []
    for _ in range(repeats):
        for call in calls:
            started = time.perf_counter()
            call()
            out.append((time.perf_counter() - started) * 1000)
    return out


def report(name: str, local: list[float], http: list[float]) -> None:
    def p90(values: list[float]) -> float:
        return sorted(values)[int(0.9 * (len(values) - 1))]

    a, b = statistics.median(local), statistics.median(http)
    print(f"{name:<10} in process median {a:8.2f} ms (p90 {p90(local):8.2f})   over HTTP median {b:8.2f} ms "
          f"(p90 {p90(http):8.2f})   HTTP/in-process {b / a:5.2f}×   (+{b - a:.2f} ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import httpx

    from recommender.ranker import Ranker
    from routing.answering import bundled_questions, read_questions
    from routing.http_api import Api, ApiServer
    from routing.router_store import load_router
    from routing.serve import RoutingSession

    session = RoutingSession(load_router(), device="cpu")
    ranker = Ranker.load(device="cpu")
    server = ApiServer(("127.0.0.1", 0), Api(session, None, lambda: ranker))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    questions = read_questions(bundled_questions(), labelled=True)
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            local = times_ms([lambda q=q: session.decide(q) for q in questions], args.repeats)
            http = times_ms([lambda q=q: client.post("/v1/route", json={"question": q.question, "choices": q.choices,
                                                                        "decide_only": True}).raise_for_status()
                             for q in questions], args.repeats)
            report("route", local, http)  # repeated texts: the encoder's cache answers the embedding
            # a text never seen before on every call, in this run or an earlier one (the encoder's cache
            # is a file that outlives the process: a counter from 0 was answered from it on a second run)
            def new(q):  # type: ignore[no-untyped-def]
                return type(q)(f"{q.question} (#{uuid.uuid4().hex[:12]})", q.choices)

            local = times_ms([lambda q=q: session.decide(new(q)) for q in questions], args.repeats)
            http = times_ms([lambda q=q: client.post("/v1/route", json={"question": new(q).question, "choices": q.choices,
                                                                        "decide_only": True}).raise_for_status()
                             for q in questions], args.repeats)
            report("route new", local, http)
            local = times_ms([lambda d=d: ranker.rank(d, top_k=10) for d in DESCRIPTIONS], args.repeats)
            http = times_ms([lambda d=d: client.post("/v1/rank", json={"description": d, "top_k": 10}).raise_for_status()
                             for d in DESCRIPTIONS], args.repeats)
            report("rank", local, http)
            from routing.local_models import get
            from routing.runtime import open_model

            encoder = open_model(get("all-minilm-l6-v2"), device="cpu")  # what /v1/embeddings opens
            local = times_ms([lambda q=q: encoder.encode([q.question]) for q in questions], args.repeats)
            http = times_ms([lambda q=q: client.post("/v1/embeddings", json={"model": "all-minilm-l6-v2",
                                                                             "input": q.question}).raise_for_status()
                             for q in questions], args.repeats)
            report("embed", local, http)
            # scoring a continuation as lm-evaluation-harness asks it (echo, one written token, logprobs):
            # the router's decision, the prompt scored and one token, against the same work in process
            names = [m.name for m in session.models]
            smollm = names.index("smollm2-135m-instruct") if "smollm2-135m-instruct" in names else None
            if smollm is not None:
                prompts = [f"Question: {q.question}\nAnswer: {q.choices[q.answer or 0]}" for q in questions[:16]]

                def in_process(text: str) -> None:
                    from routing.answering import Question

                    session.decide(Question(text, []))
                    session.score_prompt(smollm, text, 1)
                    session.complete(smollm, text, 1, logprobs=1)

                local = times_ms([lambda t=t: in_process(t) for t in prompts], args.repeats)
                http = times_ms([lambda t=t: client.post("/v1/completions", json={
                    "model": "lensroute", "prompt": t, "max_tokens": 1, "echo": True, "logprobs": 1,
                    "temperature": 0}).raise_for_status() for t in prompts], args.repeats)
                report("score", local, http)
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
