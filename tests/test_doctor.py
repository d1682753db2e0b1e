"""`lensroute doctor`: each part the program needs, whether it works here, and the command that
fixes it; it reports a missing catalogue without creating one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app import doctor
from tests.conftest import REPO

NAMES = ["data folder", "catalogue", "ranker", "text encoder", "onnxruntime", "local models", "routers", "PyTorch",
         "desktop window"]


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_a_fresh_home_names_each_missing_part_and_its_fix(isolated_home: Path) -> None:
    checks = doctor.run_checks()
    found = by_name(checks)
    assert list(found) == NAMES
    assert found["data folder"].ok
    assert not found["catalogue"].ok and found["catalogue"].fix == "lensroute init"
    assert not (isolated_home / "catalogue.db").exists()  # reported, not created
    elsewhere = isolated_home / "team" / "catalogue.db"  # a --db catalogue: the fix names it too
    assert doctor.catalogue(str(elsewhere)).fix == f"lensroute init --db {elsewhere}"
    assert not found["ranker"].ok and found["ranker"].fix == "lensroute train"
    assert not found["local models"].ok and not found["local models"].needed  # optional: fails nothing
    assert not found["routers"].ok and not found["routers"].needed and found["routers"].fix == "lensroute route calibrate"
    assert doctor.exit_code(checks) == 4  # no data


def test_all_needed_parts_present_pass(fixture_store, encoder: Path) -> None:  # type: ignore[no-untyped-def]
    from recommender.ranker import user_ranker_dir
    from recommender.store.queries import catalogue_stats

    folder = user_ranker_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"model_version": "abc123", "data": {"records": 7, "models": 3}}))
    checks = doctor.run_checks(fixture_store.url)
    found = by_name(checks)
    assert all(c.ok for c in checks if c.needed), [c for c in checks if not c.ok]
    assert doctor.exit_code(checks) == 0
    assert f"{catalogue_stats(fixture_store).records:,} records" in found["catalogue"].detail
    assert found["ranker"].detail.startswith("abc123 (trained here, 7 records, 3 models)")
    assert "filters" not in found["ranker"].detail
    (folder / "vocab.json").write_text(json.dumps({"models": ["a/b"]}))  # a ranker exported before the filters
    assert "exported before the licence and open-weights filters" in doctor.ranker().detail
    (folder / "vocab.json").write_text(json.dumps({"models": ["a/b"], "licences": [None]}))
    assert "filters" not in doctor.ranker().detail
    assert "one epoch deep" not in doctor.ranker().detail
    trained = {"model_version": "abc123", "data": {}, "training": {"rows_seen": 10, "seconds": 1.0}}
    (folder / "manifest.json").write_text(json.dumps(trained))  # exported before the refit fix
    assert "one epoch deep (`lensroute train` retrains it)" in doctor.ranker().detail
    (folder / "manifest.json").write_text(json.dumps({**trained, "training": {"rows_seen": 10, "refit_epochs": 3}}))
    assert "one epoch deep" not in doctor.ranker().detail
    assert "sessions run on CPU" in found["onnxruntime"].detail  # a real session on the encoder's model
    assert str(encoder) in found["text encoder"].detail


def test_a_broken_check_and_missing_optional_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> doctor.Check:
        raise OSError("disk unreadable")

    monkeypatch.setattr(doctor, "ranker", broken)
    monkeypatch.setitem(sys.modules, "PySide6", None)  # the Qt libraries do not load
    monkeypatch.setitem(sys.modules, "torch", None)  # no PyTorch, as in the frozen app
    found = by_name(doctor.run_checks())
    assert not found["ranker"].ok and found["ranker"].detail == "OSError: disk unreadable"
    window = found["desktop window"]
    assert not window.ok and not window.needed and "libegl1" in (window.fix or "")
    assert not found["PyTorch"].ok and not found["PyTorch"].needed and "cannot train" in found["PyTorch"].detail


def test_a_builtin_built_before_multi_turn_chat_is_named_with_its_rebuild(isolated_home: Path) -> None:
    from routing.builtins import SMOLLM_NAME
    from routing.local_models import MANIFEST, local_dir
    from tests.test_local_runtime import TINY_CHAT

    folder = local_dir() / SMOLLM_NAME
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"")  # the check reads manifests only
    (folder / "tokenizer.json").write_text("{}")
    manifest = {"name": SMOLLM_NAME, "kind": "causal-lm", "max_length": 2048}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    check = doctor.local_models()
    assert not check.ok and not check.needed and "answers a conversation from its last message only" in check.detail
    assert check.fix == f"lensroute models build-builtin --only {SMOLLM_NAME}"
    (folder / MANIFEST).write_text(json.dumps({**manifest, "chat": TINY_CHAT}))
    assert doctor.local_models().ok


def test_the_window_check_names_missing_x11_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    """In an X11 session, the packages Qt's X11 platform lacks (the check `lensroute gui` makes)."""
    from app.gui import platform_check

    monkeypatch.setattr(platform_check, "uses_xcb", lambda: True)
    monkeypatch.setattr(platform_check, "missing_xcb_packages", lambda: ["libxcb-cursor0"])
    window = doctor.window()
    assert not window.ok and not window.needed
    assert window.detail == "Qt's X11 platform lacks: libxcb-cursor0" and window.fix == "sudo apt-get install libxcb-cursor0"
    monkeypatch.setattr(platform_check, "missing_xcb_packages", lambda: [])
    assert doctor.window().ok


def test_the_command_prints_each_check_and_exits_with_the_first_failure(isolated_home: Path) -> None:
    run = [sys.executable, "-m", "app", "doctor"]
    text = subprocess.run(run, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert text.returncode == 4, text.stderr
    assert "FAIL catalogue" in text.stdout and "fix: lensroute init" in text.stdout
    assert text.stdout.rstrip().endswith("something the main job needs is missing: see FAIL above")
    as_json = subprocess.run([*run, "--json"], capture_output=True, text=True, cwd=REPO, timeout=120)
    payload = json.loads(as_json.stdout)
    assert as_json.returncode == 4 and payload["ok"] is False
    assert [c["name"] for c in payload["checks"]] == NAMES
    assert all(set(c) == {"name", "ok", "detail", "fix", "needed"} for c in payload["checks"])
