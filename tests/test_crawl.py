"""The crawler against a real HTTP server on 127.0.0.1 serving the recorded source files."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from recommender.crawl import http as crawl_http
from recommender.crawl.http import (
    PoliteClient,
    Politeness,
    ratelimit_reset_seconds,
    retry_after_seconds,
)
from recommender.crawl.runner import crawl
from recommender.errors import CrawlError
from recommender.ingest import import_paths
from recommender.progress import CancelToken
from recommender.store import Store
from recommender.store.export import records_frame
from tests.conftest import FIXTURES, RAW
from tests.crawl_server import LeaderboardServer, etag_of
from tests.test_importers import comparable, open_llm_contents_from_eee

FAST = Politeness(max_per_host=2, min_interval=0.0, max_retries=4, backoff_base=0.01, backoff_cap=0.05,
                  timeout=0.5, max_bytes=2_000_000)


@pytest.fixture
def server() -> Iterator[LeaderboardServer]:
    with LeaderboardServer(timeout_seconds=1.5, oversize_bytes=3_000_000) as running:
        yield running


def new_store(tmp_path: Path, name: str = "c") -> Store:
    return Store(f"sqlite:///{tmp_path / f'{name}.db'}")


def serve_evalplus(server: LeaderboardServer) -> None:
    server.add("/results.json", (RAW / "evalplus/results.json").read_bytes(), "application/json")
    server.add("/results/evalperf/COMBINED-RESULTS.json",
               (RAW / "evalplus/results/evalperf/COMBINED-RESULTS.json").read_bytes(), "application/json")


def imported(tmp_path: Path, *paths: Path) -> pl.DataFrame:
    store = new_store(tmp_path, "reference")
    assert not import_paths(store, list(paths)).failed
    return records_frame(store)


def test_static_source_completes_through_every_fault_and_second_crawl_is_all_304(
    tmp_path: Path, server: LeaderboardServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(crawl_http.PoliteClient, "_wait", lambda self, s: slept.append(s))
    serve_evalplus(server)
    server.fault("/results.json", "429", "500", "timeout", "truncate")
    server.fault("/results/evalperf/COMBINED-RESULTS.json", "badjson", "oversize")
    store = new_store(tmp_path)

    report = crawl(store, "evalplus", base_url=server.base_url, politeness=FAST)
    assert report.status == "done", report.error
    assert 1.0 in slept  # the 429's Retry-After was honoured
    ours = records_frame(store)
    reference = imported(tmp_path, RAW / "evalplus")
    assert comparable(ours).equals(comparable(reference))
    assert set(ours["source_ref"]) == {f"{server.base_url}/results.json",
                                       f"{server.base_url}/results/evalperf/COMBINED-RESULTS.json"}

    again = crawl(store, "evalplus", base_url=server.base_url, politeness=FAST)
    assert again.status == "done" and again.counts.added == 0 and again.not_modified == 2
    assert [status for _, status in server.log[-2:]] == [304, 304]
    assert records_frame(store).height == ours.height


def test_persistent_fault_fails_the_run_keeps_committed_units_and_resumes(tmp_path: Path, server: LeaderboardServer) -> None:
    serve_evalplus(server)
    server.fault("/results/evalperf/COMBINED-RESULTS.json", *["500"] * 10)
    store = new_store(tmp_path)
    failed = crawl(store, "evalplus", base_url=server.base_url, politeness=FAST)
    assert failed.status == "failed" and "gave up" in failed.error
    kept = records_frame(store)
    assert set(kept["dataset"]) == {"humaneval", "humaneval+", "mbpp", "mbpp+"}  # the first file's unit

    server.faults.clear()
    before = len(server.requests_for("/results.json"))
    resumed = crawl(store, "evalplus", base_url=server.base_url, politeness=FAST)
    assert resumed.status == "done" and resumed.resumed
    assert len(server.requests_for("/results.json")) == before  # continued from the cursor
    assert "evalperf" in set(records_frame(store)["dataset"])


# --- Hugging Face Hub -----------------------------------------------------------------------------

HUB_MODELS = [
    "ajibawa-2023/Code-13B", "nvidia/stt_ar_fastconformer_hybrid_large_pcd_v1.0", "cl-nagoya/ruri-base",
    "google/text-embedding-005", "dwzhu/e5-base-4k", "HuggingFaceTB/SmolLM2-360M-Instruct", "openai/text-embedding-3-large",
]
# the listing's `tags` as the Hub gives them (licence and weight formats), for the real repositories
HUB_TAGS = {"cl-nagoya/ruri-base": ["sentence-transformers", "safetensors", "bert", "ja", "license:apache-2.0"],
            "HuggingFaceTB/SmolLM2-360M-Instruct": ["transformers", "safetensors", "llama", "text-generation", "en",
                                                    "license:apache-2.0"],
            "dwzhu/e5-base-4k": ["transformers", "pytorch", "bert", "license:mit"]}
CARDS = {"ajibawa-2023/Code-13B": FIXTURES / "model_cards/ajibawa-2023__Code-13B/README.md",
         "nvidia/stt_ar_fastconformer_hybrid_large_pcd_v1.0": FIXTURES / "model_cards/nvidia__stt_ar_fastconformer_hybrid_large_pcd_v1.0/README.md"}


def serve_hub(server: LeaderboardServer, shas: dict[str, str], page_size: int = 3) -> None:
    def listing(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        assert "sha" in query.get("expand[]", [])
        cursor = int(query.get("cursor", ["0"])[0])
        page = HUB_MODELS[cursor : cursor + page_size]
        body = json.dumps([{"id": m, "sha": shas[m], "downloads": 1000 - i, "likes": 3, **({"tags": HUB_TAGS[m]} if m in HUB_TAGS else {})}
                           for i, m in enumerate(page)]).encode()
        headers = {"Content-Type": "application/json", "RateLimit": '"api";r=50;t=60'}
        if cursor + page_size < len(HUB_MODELS):
            headers["Link"] = f'<{server.base_url}/api/models?limit={page_size}&expand[]=sha&cursor={cursor + page_size}>; rel="next"'
        return 200, headers, body

    def card(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        model = path.split("/resolve/")[0].strip("/")
        sha = path.split("/resolve/")[1].split("/")[0]
        if model in CARDS and shas[model] == sha:
            return 200, {"Content-Type": "text/markdown"}, CARDS[model].read_bytes()
        return 404, {}, b"Entry not found"

    server.handlers["/api/models"] = listing
    for model in HUB_MODELS:
        server.handlers[f"/{model}/resolve/"] = card


def test_hub_listing_pages_and_cards_only_when_the_sha_changed(tmp_path: Path, server: LeaderboardServer) -> None:
    shas = {m: hashlib.sha1(m.encode()).hexdigest() for m in HUB_MODELS}
    serve_hub(server, shas)
    store = new_store(tmp_path)
    report = crawl(store, "hf-hub", base_url=server.base_url, politeness=FAST, options={"page_size": 3})
    assert report.status == "done", report.error
    assert report.units == 3  # 7 models in pages of 3
    frame = records_frame(store)
    assert set(frame["model"]) == set(CARDS) and set(frame["source"]) == {"hf_model_cards"}
    assert len(server.requests_for("/ajibawa-2023/Code-13B/resolve/")) == 1
    with store.engine.connect() as conn:
        downloads = dict(conn.exec_driver_sql("SELECT name, downloads FROM models").all())
    assert downloads["ajibawa-2023/Code-13B"] == 1000
    with store.engine.connect() as conn:  # what the ranking filters read: licence and open weights from the tags
        facts = {name: (licence, json.loads(extra or "{}").get("open_weights"))
                 for name, licence, extra in conn.exec_driver_sql("SELECT name, licence, extra FROM models")}
    assert facts["cl-nagoya/ruri-base"] == ("apache-2.0", True) and facts["dwzhu/e5-base-4k"] == ("mit", True)
    assert facts["google/text-embedding-005"] == (None, None)  # no tags: nothing claimed
    assert facts["ajibawa-2023/Code-13B"][0] == "cc-by-nc-nd-4.0"  # from its card

    again = crawl(store, "hf-hub", base_url=server.base_url, politeness=FAST, options={"page_size": 3})
    assert again.status == "done" and again.counts.added == 0
    assert len(server.requests_for("/ajibawa-2023/Code-13B/resolve/")) == 1  # same sha: no refetch

    shas["ajibawa-2023/Code-13B"] = "f" * 40
    third = crawl(store, "hf-hub", base_url=server.base_url, politeness=FAST, options={"page_size": 3})
    assert third.status == "done"
    assert len(server.requests_for("/ajibawa-2023/Code-13B/resolve/")) == 2
    assert len(server.requests_for("/nvidia/")) == 1


def test_cancelled_crawl_loses_nothing_and_the_next_crawl_continues_from_the_cursor(
    tmp_path: Path, server: LeaderboardServer
) -> None:
    shas = {m: hashlib.sha1(m.encode()).hexdigest() for m in HUB_MODELS}
    serve_hub(server, shas, page_size=2)
    store = new_store(tmp_path)
    token = CancelToken()

    def cancel_after_first_unit(done: float, total: float | None = None, message: str = "") -> None:
        if done >= 1:
            token.cancel()

    first = crawl(store, "hf-hub", base_url=server.base_url, politeness=FAST, options={"page_size": 2},
                  progress=cancel_after_first_unit, cancel=token)
    assert first.status == "cancelled" and first.units == 1
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM models").scalar() == 2  # page 1 was committed
        status, cursor = conn.exec_driver_sql("SELECT status, cursor FROM crawl_runs").one()
    assert status == "cancelled" and "cursor=2" in json.loads(cursor)["next_page"]

    listed = len(server.requests_for("/api/models"))
    second = crawl(store, "hf-hub", base_url=server.base_url, politeness=FAST, options={"page_size": 2})
    assert second.status == "done" and second.resumed
    assert len(server.requests_for("/api/models")) - listed == 3  # pages 2..4, not page 1 again
    assert set(records_frame(store)["model"]) == set(CARDS)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM models").scalar() == len(HUB_MODELS)


def test_hub_ratelimit_header_delays_the_next_request(tmp_path: Path, server: LeaderboardServer, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(crawl_http.PoliteClient, "_wait", lambda self, s: slept.append(s))
    shas = {m: "a" * 40 for m in HUB_MODELS}
    serve_hub(server, shas)
    original = server.handlers["/api/models"]

    def exhausted(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = original(path, query)
        return status, {**headers, "RateLimit": '"api";r=0;t=7'}, body

    server.handlers["/api/models"] = exhausted
    report = crawl(new_store(tmp_path), "hf-hub", base_url=server.base_url, politeness=FAST, options={"page_size": 3, "limit": 6})
    assert report.status == "done"
    assert any(6.5 < s <= 7.0 for s in slept)


# --- MTEB archive and Open LLM Leaderboard ---------------------------------------------------------


def mteb_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for file in sorted((RAW / "mteb/results").rglob("*.json")):
            tar.add(file, arcname=f"results-main/{file.relative_to(RAW / 'mteb')}")
    return buffer.getvalue()


def test_mteb_archive_crawl_matches_the_tree_import_and_then_costs_one_304(tmp_path: Path, server: LeaderboardServer) -> None:
    server.add("/embeddings-benchmark/results/archive/refs/heads/main.tar.gz", mteb_archive(), "application/gzip")
    store = new_store(tmp_path)
    report = crawl(store, "mteb", base_url=server.base_url, politeness=FAST)
    assert report.status == "done", report.error
    assert comparable(records_frame(store)).equals(comparable(imported(tmp_path, RAW / "mteb")))
    again = crawl(store, "mteb", base_url=server.base_url, politeness=FAST)
    assert (again.status, again.not_modified, again.counts.added) == ("done", 1, 0)
    assert server.log[-1][1] == 304


def test_open_llm_leaderboard_contents_crawl(tmp_path: Path, server: LeaderboardServer) -> None:
    contents = open_llm_contents_from_eee(tmp_path / "contents.parquet")
    server.add("/datasets/open-llm-leaderboard/contents/resolve/main/data/train-00000-of-00001.parquet", contents.read_bytes())
    store = new_store(tmp_path)
    report = crawl(store, "open-llm-leaderboard", base_url=server.base_url, politeness=FAST)
    assert report.status == "done" and report.counts.added == 12


# --- the client's own rules -------------------------------------------------------------------------


def test_retry_after_and_ratelimit_parsing() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert ratelimit_reset_seconds('"api";r=0;t=42') == 42.0
    assert ratelimit_reset_seconds('"api";r=12;t=42') is None


def test_client_sends_a_user_agent_and_conditional_headers(server: LeaderboardServer) -> None:
    seen: dict[str, str] = {}

    def echo(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        return 200, {"ETag": etag_of(b"x")}, b"x"

    server.handlers["/echo"] = echo
    import httpx

    def record(request: httpx.Request) -> None:
        seen.update(request.headers)

    with PoliteClient(FAST) as client:
        client._client.event_hooks["request"] = [record]
        assert client.get(f"{server.base_url}/echo").body == b"x"
        assert seen["user-agent"].startswith("lensroute/")
        client.get(f"{server.base_url}/echo", etag='"abc"')
        assert seen["if-none-match"] == '"abc"'


def test_http_errors_that_are_not_transient_fail_at_once(server: LeaderboardServer) -> None:
    with PoliteClient(FAST) as client, pytest.raises(CrawlError, match="HTTP 404"):
        client.get(f"{server.base_url}/missing")
    assert len(server.log) == 1


def test_livebench_requires_a_release(tmp_path: Path, server: LeaderboardServer) -> None:
    report = crawl(new_store(tmp_path), "livebench", base_url=server.base_url, politeness=FAST)
    assert report.status == "failed" and "--release" in report.error


def test_crawl_command_line(tmp_path: Path, server: LeaderboardServer) -> None:
    from tests.test_cli_catalogue import lensroute

    serve_evalplus(server)
    db = str(tmp_path / "c.db")
    done = lensroute("--db", db, "crawl", "evalplus", "--base-url", server.base_url, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "done" and report["added"] == 598
    listing = lensroute("--db", db, "crawl", "--list")
    assert "evalplus" in listing.stdout and "last run done" in listing.stdout
    server.fault("/results.json", *["500"] * 20)
    failed = lensroute("--db", db, "crawl", "evalplus", "--base-url", server.base_url, "--restart")
    assert failed.returncode == 1 and "gave up" in failed.stderr and "Traceback" not in failed.stderr
    listing = lensroute("--db", db, "crawl", "--list")  # the last run's failure, with its reason
    line = next(line for line in listing.stdout.splitlines() if line.startswith("evalplus"))
    assert "last run failed at" in line and "gave up after" in line


def test_ctrl_c_during_a_cli_crawl_keeps_what_was_stored_and_the_rerun_resumes(tmp_path: Path, server: LeaderboardServer) -> None:
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    shas = {m: hashlib.sha1(m.encode()).hexdigest() for m in HUB_MODELS}
    serve_hub(server, shas, page_size=2)
    listing = server.handlers["/api/models"]

    def slow(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        time.sleep(0.4)
        return listing(path, query)

    server.handlers["/api/models"] = slow
    db = tmp_path / "c.db"
    args = [sys.executable, "-m", "app", "--db", str(db), "crawl", "hf-hub", "--base-url", server.base_url, "--page-size", "2"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.time() + 30
    while time.time() < deadline:
        time.sleep(0.1)
        try:
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT COUNT(*) FROM models").fetchone()[0] >= 2:
                    break
        except sqlite3.Error:
            continue
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    with sqlite3.connect(db) as conn:
        kept = conn.execute("SELECT COUNT(*) FROM models").fetchone()[0]
        status = conn.execute("SELECT status FROM crawl_runs").fetchone()[0]
    assert kept >= 2 and status == "cancelled"
    rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["resumed"] is True
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM models").fetchone()[0] == len(HUB_MODELS)


def test_a_crawl_into_an_sqlite_catalogue_never_loads_sqlalchemy(tmp_path: Path, server: LeaderboardServer) -> None:
    """Crawls write and read their bookkeeping through sqlite3, as imports do (see test_store)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    serve_evalplus(server)
    code = (
        "import sys\n"
        "from app.cli.main import main\n"
        f"assert main(['-q', '--db', {str(tmp_path / 'c.db')!r}, 'crawl', 'evalplus', '--base-url', {server.base_url!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "added 598" in done.stdout and done.stdout.strip().splitlines()[-1] == "[]"
