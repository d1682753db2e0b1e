"""`lensroute route chat`: a conversation routed message by message, each reply written in the light
of the turns before it (`routing.conversation`), over the real MiniLM and a tiny Llama."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recommender.errors import UsageError
from recommender.progress import CancelToken
from tests.conftest import REPO
from tests.test_routing import run_cli, small_mc_set


@pytest.fixture
def calibrated(local_pool: list[str], tmp_path: Path) -> list[str]:
    from routing.answering import read_questions
    from routing.calibrate import calibrate

    calibrate(local_pool, read_questions(small_mc_set(tmp_path, 12), labelled=True), device="cpu")
    return local_pool


def greedy_reply(turns: list, max_new_tokens: int) -> str:  # type: ignore[type-arg]
    """What the tiny Llama writes after exactly these turns, in its chat format."""
    from routing.local_models import get
    from routing.runtime import open_model

    tiny = open_model(get("tiny-llama"), device="cpu")
    assert tiny.chat is not None
    return tiny.generate_reply(tiny.chat.render(turns), max_new_tokens).text.strip()


@pytest.mark.builtin_models
def test_each_reply_reads_the_conversation_before_it(calibrated: list[str]) -> None:
    from routing.chat_format import Turn
    from routing.conversation import Conversation
    from routing.router_store import load_router
    from routing.serve import RoutingSession

    session = RoutingSession(load_router(), device="cpu")
    chat = Conversation(session, system="w7 w8", max_new_tokens=3)
    heard: list[str] = []
    routed: list[str] = []
    first = chat.ask("w9 w10", heard.append, on_routed=routed.append)
    assert first["model"] == "tiny-llama" == routed[0]  # only the causal LM writes text
    assert first["reply"] == greedy_reply([Turn("system", "w7 w8"), Turn("user", "w9 w10")], 3)
    assert "".join(heard).strip() == first["reply"] and first["turns"] == 2
    assert first["usage"]["prompt_tokens"] > 0 and 1 <= first["usage"]["completion_tokens"] <= 3
    second = chat.ask("w11")
    assert second["reply"] == greedy_reply([Turn("system", "w7 w8"), Turn("user", "w9 w10"),
                                            Turn("assistant", first["reply"]), Turn("user", "w11")], 3)
    assert second["turns"] == 4 and {m["model"] for m in second["pool"]} == set(calibrated)
    chat.reset()
    assert chat.ask("w11")["turns"] == 2  # forgotten; the system prompt stays
    # a reply cancelled while it is written keeps what was written, and says so
    token = CancelToken()
    token.cancel()
    pieces: list[str] = []
    stopped = chat.ask("w12 w13", pieces.append, token)
    assert stopped["finish_reason"] == "cancelled" and stopped["reply"] == pieces[0].strip() and len(pieces) == 1
    assert stopped["usage"] is None
    assert chat.turns[-1] == Turn("assistant", stopped["reply"])
    with pytest.raises(UsageError, match="empty"):
        chat.ask("   ")
    # a multiple-choice message: the reply is an option, heard whole, chosen after the conversation
    options: list[str] = []
    picked = chat.ask("w20", options.append, choices=["w1", "w2"])
    assert picked["reply"] in {"w1", "w2"} and options == [picked["reply"]] and picked["finish_reason"] == "stop"
    with pytest.raises(UsageError, match="given twice"):
        chat.ask("w20", choices=["w1", "w1"])


@pytest.mark.builtin_models
def test_a_pool_of_embedding_models_cannot_chat(local_pool: list[str], tmp_path: Path) -> None:
    from routing.answering import read_questions
    from routing.calibrate import calibrate
    from routing.conversation import Conversation
    from routing.router_store import load_router
    from routing.serve import RoutingSession

    calibrate(["all-minilm-l6-v2"], read_questions(small_mc_set(tmp_path, 12), labelled=True), device="cpu")
    with pytest.raises(UsageError, match="embedding models only"):
        Conversation(RoutingSession(load_router(), device="cpu"))


@pytest.mark.builtin_models
def test_route_chat_reads_a_pipe_and_answers_each_line(calibrated: list[str]) -> None:
    lines = "w9 w10\n\n/reset\nw11\n/help\nw12\n/exit\nw13\n"
    done = subprocess.run([sys.executable, "-m", "app", "route", "chat", "--json", "--max-tokens", "2",
                           "--system", "w7", "--device", "cpu"], input=lines, capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["message"] for r in replies] == ["w9 w10", "w11", "w12"]  # blank skipped, nothing after /exit
    assert [r["turns"] for r in replies] == [2, 2, 4]  # /reset forgot the first exchange
    assert all(r["model"] == "tiny-llama" and r["finish_reason"] in {"stop", "length"} for r in replies)
    assert "(the conversation is forgotten)" in done.stderr and "/reset forgets" in done.stderr
    assert "3 message(s) routed: tiny-llama 3" in done.stderr
    text = subprocess.run([sys.executable, "-m", "app", "route", "chat", "--max-tokens", "2", "--device", "cpu"],
                          input="w9 w10\n", capture_output=True, text=True, timeout=300, cwd=REPO, env=os.environ.copy())
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("tiny-llama> ")  # the reply on stdout, who wrote it first
    assert "[tiny-llama: routed in" in text.stderr  # how it went, on stderr

    # sampled: the options reach the decoder, and a seed repeats the conversation's replies
    from routing.conversation import Conversation
    from routing.router_store import load_router
    from routing.sampling import Sampling
    from routing.serve import RoutingSession

    def replies_in_process(sampling: Sampling) -> list[str]:
        conversation = Conversation(RoutingSession(load_router(), device="cpu"), max_new_tokens=6, sampling=sampling)
        return [conversation.ask(message)["reply"] for message in ("w9 w10", "w11")]

    seeded = Sampling(temperature=1.0, top_p=0.95, seed=5)
    assert replies_in_process(seeded) == replies_in_process(seeded) != replies_in_process(Sampling())
    sampled = subprocess.run([sys.executable, "-m", "app", "route", "chat", "--json", "--max-tokens", "6", "--temperature",
                              "1", "--top-p", "0.95", "--seed", "5", "--device", "cpu"], input="w9 w10\nw11\n",
                             capture_output=True, text=True, timeout=300, cwd=REPO, env=os.environ.copy())
    assert sampled.returncode == 0, sampled.stderr
    assert [json.loads(line)["reply"] for line in sampled.stdout.splitlines()] == replies_in_process(seeded)

    # Ctrl-C while it waits for the next message ends the chat cleanly
    process = subprocess.Popen([sys.executable, "-m", "app", "route", "chat", "--json", "--max-tokens", "2",
                                "--device", "cpu"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO, env=os.environ.copy())
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("w9\n")
    process.stdin.flush()
    assert json.loads(process.stdout.readline())["message"] == "w9"  # answered: now it waits on stdin
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "1 message(s) routed: tiny-llama 1" in err and "Traceback" not in err, err


@pytest.mark.builtin_models
def test_route_chat_without_a_router_or_with_a_bad_option(local_pool: list[str]) -> None:
    missing = run_cli("route", "chat")
    assert missing.returncode == 3 and "lensroute route calibrate" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr
    bad = run_cli("route", "chat", "--max-tokens", "0")
    assert bad.returncode == 2 and "--max-tokens" in bad.stderr
    for option, value, words in (("--temperature", "3", "--temperature must be a number from 0 to 2"),
                                 ("--top-p", "0", "--top-p must be a number above 0"),
                                 ("--frequency-penalty", "9", "--frequency-penalty must be a number from -2 to 2")):
        for command in ("chat", "answer"):
            args = ("route", command, "Q?") if command == "answer" else ("route", command)
            refused = run_cli(*args, option, value)
            assert refused.returncode == 2 and words in refused.stderr, refused.stderr
            assert len(refused.stderr.strip().splitlines()) == 1
