"""The frozen application (installer/freeze.sh): built with PyInstaller from this environment, it
passes installer/smoke-frozen.sh — a fresh data folder, no network, no Python from outside: init,
stats, rank with the shipped ranker and encoder, export and re-import, calibrate and route, the
GUI's pages without an error, and a one-line "use the full install" for what needs torch — and it
crawls a local leaderboard server. Without freezing: that message itself, the shipped-model
fallback, and that only the training and building modules need torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def test_a_command_that_needs_torch_says_so_in_one_line_when_torch_is_absent(tmp_path: Path) -> None:
    # sys.modules[name] = None makes `import torch` fail as it does in the frozen app
    code = ("import sys; sys.modules['torch'] = None; from app.cli.main import main; "
            "sys.exit(main(['-q', 'train', '--epochs', '1']))")
    env = {**os.environ, "LENSROUTE_HOME": str(tmp_path / "home")}
    subprocess.run([sys.executable, "-m", "app", "-q", "init"], check=True, capture_output=True, env=env, cwd=REPO)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 5, done.stderr
    assert done.stderr.count("\n") == 1 and "PyTorch (torch)" in done.stderr and "full install" in done.stderr
    assert "Traceback" not in done.stderr


# The modules that train, export or build, and so need torch; every other module must import
# without it, or the frozen app breaks where it imports one (the Train page's saved evaluation
# tables once did, through recommender.evaluation_log).
NEEDS_TORCH = {
    "recommender.distributed", "recommender.evaluation", "recommender.lens_export", "recommender.modellens",
    "recommender.pipeline", "recommender.training",
    "routing.bert", "routing.informed", "routing.informed_bert", "routing.llama",
}


def test_only_the_training_and_building_modules_need_torch() -> None:
    code = """
import importlib, pkgutil, sys
sys.modules["torch"] = None
import app, recommender, routing
for pkg in (app, recommender, routing):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if info.name.endswith(("__main__", ".entry")):
            continue  # running these starts the program
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if exc.name == "torch":
                print(info.name)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    needing = set(done.stdout.split())
    assert needing and needing <= NEEDS_TORCH, f"these now need torch: {sorted(needing - NEEDS_TORCH)}"


def test_an_unrelated_missing_module_stays_an_unexpected_error() -> None:
    from recommender.errors import missing_build_module

    assert missing_build_module(ModuleNotFoundError("No module named 'torch.nn'", name="torch.nn")) is not None
    assert missing_build_module(ModuleNotFoundError("No module named 'polars'", name="polars")) is None
    assert missing_build_module(ImportError("cannot import name 'x'")) is None


@pytest.mark.builtin_models
def test_a_shipped_ready_built_model_is_used_until_one_is_built_here(
    encoder_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender import paths, text_encoder
    from recommender.errors import UsageError
    from routing import local_models

    monkeypatch.delenv("LENSROUTE_ENCODER_DIR", raising=False)
    resources = tmp_path / "resources"
    monkeypatch.setattr(paths, "resources_dir", lambda: resources)
    built = text_encoder.encoder_build_dir()
    assert text_encoder.encoder_dir() == built and local_models.installed() == []  # nothing shipped, nothing built

    shipped = paths.bundled_models_dir() / text_encoder.ENCODER_NAME
    shipped.mkdir(parents=True)
    for name in ("model.onnx", "tokenizer.json", "lensroute-model.json"):
        (shipped / name).symlink_to(encoder_folder / name)
    assert text_encoder.encoder_dir() == shipped
    assert [m.path for m in local_models.installed()] == [shipped]
    vector = text_encoder.TextEncoder(cache=False).encode(["passages about French law"])
    assert vector.shape == (1, text_encoder.DIM)
    with pytest.raises(UsageError, match="ships with this lensroute"):
        local_models.remove(text_encoder.ENCODER_NAME)
    assert shipped.is_dir()

    built.mkdir(parents=True)  # `models build-builtin` wrote one into the data folder: it wins
    for name in ("model.onnx", "tokenizer.json", "lensroute-model.json"):
        (built / name).symlink_to(encoder_folder / name)
    assert text_encoder.encoder_dir() == built
    assert [m.path for m in local_models.installed()] == [built]


@pytest.mark.slow
@pytest.mark.builtin_models
def test_frozen_app_passes_its_smoke_test(ranker_dir: Path, encoder_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    env = {**os.environ, "LENSROUTE_PYTHON": sys.executable}
    build = subprocess.run(
        [str(REPO / "installer" / "freeze.sh"), "--no-archive", "--out", str(out),
         "--ranker", str(ranker_dir), "--encoder", str(encoder_folder)],
        capture_output=True, text=True, env=env, timeout=1200,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    app = out / "lensroute"
    assert (app / "lensroute").is_file()
    internal = app / "_internal"
    assert not (internal / "torch").exists(), "torch was frozen in: the excludes in lensroute.spec did not apply"
    assert (internal / "share" / "lensroute" / "resources" / "ranker" / "scorer.onnx").is_file()
    smoke = subprocess.run([str(REPO / "installer" / "smoke-frozen.sh"), str(app)], capture_output=True, text=True,
                           timeout=600)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert smoke.stdout.count("ok   ") >= 12 and "frozen app OK" in smoke.stdout

    # the crawler (httpx) frozen too: a real crawl from the local leaderboard server, then all 304s
    from tests.crawl_server import LeaderboardServer
    from tests.test_crawl import serve_evalplus

    db = str(tmp_path / "crawled.db")
    with LeaderboardServer() as server:
        serve_evalplus(server)
        crawls = [subprocess.run([str(app / "lensroute"), "--db", db, "crawl", "evalplus", "--base-url", server.base_url,
                                  "--json"], capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert all(c.returncode == 0 for c in crawls), crawls[-1].stderr
    first, second = (json.loads(c.stdout) for c in crawls)
    assert first["status"] == "done" and first["added"] == 598
    assert second["added"] == 0 and second["not_modified"] >= 1, second

    # and it serves: the HTTP API (http.server) frozen in, ranking with the shipped ranker
    import signal

    import httpx

    serving = subprocess.Popen([str(app / "lensroute"), "serve", "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        url = serving.stdout.readline().split()[2]  # type: ignore[union-attr]
        ranked = httpx.post(f"{url}/v1/rank", json={"description": "Write Python functions from docstrings", "top_k": 3},
                            timeout=120)
        assert ranked.status_code == 200, ranked.text
        assert len(ranked.json()["results"]) == 3
    finally:
        serving.send_signal(signal.SIGINT)
        assert serving.wait(timeout=60) == 0
