"""Shared fixtures: isolated program data, the real data folder, and a store per engine."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
RAW = FIXTURES / "raw"
SHARED_DATA = Path(os.environ.get("LENSROUTE_SHARED_DATA", REPO.parent / "shared" / "data"))
PG_URL = os.environ.get("LENSROUTE_TEST_PG_URL")

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own LENSROUTE_HOME and config dir; no test sees the user's data."""
    home = tmp_path / "lensroute-home"
    monkeypatch.setenv("LENSROUTE_HOME", str(home))
    monkeypatch.setenv("LENSROUTE_CONFIG", str(tmp_path / "lensroute-config"))
    monkeypatch.delenv("LENSROUTE_DB", raising=False)
    return home


@pytest.fixture(scope="session")
def encoder_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real all-MiniLM-L6-v2 ONNX export, built once per session (about 10 s) unless the
    set-up already built it in the user's data folder."""
    import platformdirs

    built = Path(platformdirs.user_data_dir("lensroute")) / "models" / "local" / "all-minilm-l6-v2"
    if (built / "model.onnx").is_file() and (built / "tokenizer.json").is_file():
        return built
    from recommender.text_encoder import build_minilm

    folder = tmp_path_factory.mktemp("encoder") / "all-minilm-l6-v2"
    build_minilm(folder)
    return folder


@pytest.fixture
def encoder(encoder_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the program's one text encoder at the session's build."""
    monkeypatch.setenv("LENSROUTE_ENCODER_DIR", str(encoder_folder))
    return encoder_folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "records").is_dir():
        pytest.skip(f"needs the shared data folder ({SHARED_DATA}); it is absent here")
    return SHARED_DATA


def _pg_schema_url(schema: str) -> str:
    assert PG_URL is not None
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if not PG_URL:
        pytest.skip("no PostgreSQL server (set LENSROUTE_TEST_PG_URL; .ci/run starts one)")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalogue.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url: str):  # type: ignore[no-untyped-def]
    from recommender.store import Store

    opened = Store(db_url)
    yield opened
    opened.close()


@pytest.fixture
def fixture_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real SQLite catalogue holding every fixture source file."""
    from recommender.ingest import import_paths
    from recommender.store import Store

    store = Store(f"sqlite:///{tmp_path / 'catalogue.db'}")
    assert not import_paths(store, [RAW]).failed
    return store


@pytest.fixture
def ranker_dir(fixture_store, encoder: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A small ModelLens ranker trained on the fixture catalogue (about 20 s)."""
    from recommender.pipeline import train_ranker
    from recommender.training import TrainConfig

    out = tmp_path / "ranker"
    manifest = train_ranker(fixture_store, TrainConfig(epochs=4, patience=2), out)
    assert manifest["parity"]["max_abs_diff"] <= 1e-4 and manifest["parity"]["identical_top50"]
    return out


@pytest.fixture
def local_pool(encoder: Path, tmp_path: Path) -> list[str]:
    """Two installed local models: the real MiniLM and a tiny random Llama (fast)."""
    import json

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from routing.llama import from_hf
    from routing.local_models import add
    from tests.test_local_runtime import TINY_CHAT, tiny_model_folder

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
    folder = tiny_model_folder(from_hf(LlamaForCausalLM(config).eval()), tmp_path, chat=TINY_CHAT)
    manifest = json.loads((folder / "lensroute-model.json").read_text())
    (folder / "lensroute-model.json").write_text(json.dumps({**manifest,
                                                             "catalogue_name": "HuggingFaceTB/SmolLM2-360M-Instruct"}))
    add(folder)
    add(encoder)
    return ["tiny-llama", "all-minilm-l6-v2"]


def torchrun_port_race(stderr: str) -> bool:
    """torchrun's known launcher race: the free port it picked was taken before its store bound it
    (pytorch/pytorch#12876 and kin). The only failure the data-parallel tests launch again."""
    return "EADDRINUSE" in stderr or "address already in use" in stderr.lower()


def run_torchrun(command: list[str], **kwargs) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0 and torchrun_port_race(done.stderr):
        done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    return done
