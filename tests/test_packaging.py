"""The packaged install: the wheel carries the resources and works without the source tree; the
desktop launcher is written and removed exactly."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _copy_source(to: Path) -> Path:
    """What the wheel is built from, copied so the build leaves nothing in the checkout."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "screenshots")
    for name in ("app", "recommender", "routing", "resources"):
        shutil.copytree(REPO / name, to / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, to / name)
    return to


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = _copy_source(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    # no build isolation: the test environment's setuptools builds it, nothing is downloaded
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(source)], check=True, capture_output=True, text=True)
    (built,) = out.glob("lensroute-*.whl")
    return built


def test_wheel_holds_the_packages_and_the_resources_but_not_the_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split("/data/share/lensroute/resources/", 1)[1] for n in names if "/data/share/lensroute/resources/" in n]
    assert {"seed/records.parquet", "seed/manifest.json", "calibration/general_mc.jsonl", "lensroute.svg",
            "model_prices.yaml"} <= set(data)
    tops = {n.split("/")[0] for n in names}
    assert {"app", "recommender", "routing"} <= tops and "tests" not in tops
    assert not any("screenshots" in n for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_wheel_loads_the_seed_and_adds_its_launcher_without_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    # lensroute itself from the wheel; its dependencies from the test environment (a path, not a
    # site dir, so the checkout's editable install is not seen)
    (target / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True, text=True)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("PYTHONPATH", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "lensroute"), *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)

    where = subprocess.run([venv / "bin" / "python", "-c", "import recommender.paths as p; print(p.__file__); print(p.resources_dir())"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout.split()
    assert where[0].startswith(str(venv)) and where[1] == str(venv / "share" / "lensroute" / "resources")
    done = run("--db", str(tmp_path / "cat.db"), "init", "--json")
    assert done.returncode == 0, done.stderr
    installed_seed = json.loads(done.stdout)
    # the same seed as the checkout loads
    reference = subprocess.run([sys.executable, "-m", "app", "--db", str(tmp_path / "ref.db"), "init", "--json"],
                               capture_output=True, text=True, cwd=REPO, check=True)
    keys = ("models", "datasets", "metrics", "records", "sources")
    assert {k: installed_seed[k] for k in keys} == {k: json.loads(reference.stdout)[k] for k in keys}
    assert installed_seed["records"] > 100_000
    installed = json.loads(run("desktop", "install", "--json").stdout)
    entry = tmp_path / "xdg" / "applications" / "lensroute.desktop"
    assert str(entry) in installed["paths"]
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]
    parsed.read(entry)
    assert parsed["Desktop Entry"]["Exec"] == f'"{venv / "bin" / "lensroute"}" gui'
    assert (tmp_path / "xdg" / "icons" / "hicolor" / "scalable" / "apps" / "lensroute.svg").is_file()


def test_desktop_entry_is_written_and_removed_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import desktop

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    executable = tmp_path / "my apps" / "lensroute"
    executable.parent.mkdir()
    executable.write_text("#!/bin/sh\n")
    written = desktop.install(executable)
    assert written == [desktop.icon_path(), desktop.entry_path()]
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]
    parsed.read(desktop.entry_path())
    entry = parsed["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Icon"] == "lensroute" and entry["Terminal"] == "false"
    assert entry["Exec"] == f'"{executable}" gui'  # quoted: the path has a space
    assert desktop.remove() == [desktop.entry_path(), desktop.icon_path()]
    assert desktop.remove() == [] and not (tmp_path / "share" / "applications" / "lensroute.desktop").exists()
