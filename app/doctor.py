"""What `lensroute doctor` checks: each part the program needs, whether it is there and works, and
the one command that fixes it when it does not. It is the first thing to run when something does
not start, and what a bug report should include. The checks write nothing but the empty data
folders that every command makes: a missing catalogue is reported, not created."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from recommender.errors import EXIT_NO_DATA, EXIT_RUNTIME_UNAVAILABLE

DEBIAN_LIBRARIES = "libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libgl1"  # what installer/debian-libs.sh installs


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    needed: bool = True  # False: optional (a GPU, PyTorch, the window); its absence fails nothing
    exit_code: int = EXIT_RUNTIME_UNAVAILABLE  # the exit status when it fails and is needed

    def as_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "exit_code"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check that breaks is a failed check with its reason, never a traceback."""
    try:
        return check()
    except Exception as exc:
        return Check(name, False, _first_line(exc))


def data_folder() -> Check:
    from recommender import paths

    home = paths.home_dir()  # raises when it cannot be made: a failed check with the reason
    writable = os.access(home, os.W_OK)
    return Check("data folder", writable, f"{home} ({'writable' if writable else 'not writable'})",
                 None if writable else "set LENSROUTE_HOME to a folder you can write", exit_code=EXIT_NO_DATA)


def catalogue(db: str | None) -> Check:
    from sqlalchemy.engine import make_url

    from recommender import paths
    from recommender.store import Store
    from recommender.store.queries import catalogue_stats

    url = paths.database_url(db)
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    db_option = f" --db {db}" if db else ""  # the fix must name the catalogue the check looked at
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).is_file():
        return Check("catalogue", False, f"no catalogue at {parsed.database}", f"lensroute init{db_option}",
                     exit_code=EXIT_NO_DATA)
    with Store(url) as store:
        stats = catalogue_stats(store)
    detail = (f"{shown}: {stats.records:,} records, {stats.models:,} models, {stats.datasets:,} datasets, "
              f"schema {stats.schema_version}")
    empty = stats.records == 0
    return Check("catalogue", not empty, detail,
                 f"lensroute init{db_option} (or lensroute import{db_option} PATH)" if empty else None,
                 exit_code=EXIT_NO_DATA)


def ranker() -> Check:
    import json

    from recommender.ranker import find_ranker_dir, user_ranker_dir

    try:
        folder = find_ranker_dir(None)
    except Exception as exc:
        return Check("ranker", False, str(exc), "lensroute train", exit_code=EXIT_NO_DATA)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    data = manifest.get("data", {})
    whose = "trained here" if folder == user_ranker_dir() else "shipped"
    detail = (f"{manifest.get('model_version', '?')} ({whose}, {data.get('records', 0):,} records, "
              f"{data.get('models', 0):,} models) in {folder}")
    try:
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        vocab = None  # loading the ranker reports that itself; this check only reads the manifest
    if isinstance(vocab, dict) and "licences" not in vocab:
        detail += "; exported before the licence and open-weights filters (`lensroute train` adds them)"
    training = manifest.get("training")
    if isinstance(training, dict) and "refit_epochs" not in training:
        # before the fix the refit on everything came back with its first epoch's weights
        detail += "; trained before the refit kept its epochs, so one epoch deep (`lensroute train` retrains it)"
    return Check("ranker", True, detail)


def text_encoder() -> tuple[Check, Path | None]:
    from recommender.text_encoder import encoder_build_dir, encoder_dir

    folder = encoder_dir()
    if not (folder / "model.onnx").is_file():
        return Check("text encoder", False, f"no all-MiniLM-L6-v2 export in {folder}", "lensroute models build-builtin"), None
    whose = "built here" if folder == encoder_build_dir() else "shipped"
    return Check("text encoder", True, f"all-MiniLM-L6-v2 ({whose}) in {folder}"), folder / "model.onnx"


def onnx_runtime(model: Path | None) -> Check:
    """The provider a real session gets here (the encoder's), not only what the build lists."""
    import onnxruntime as ort

    from recommender.onnx_session import create_session

    providers = ", ".join(p.removesuffix("ExecutionProvider") for p in ort.get_available_providers())
    if model is None:
        return Check("onnxruntime", True, f"{ort.__version__} (providers in this build: {providers}; no model to try)")
    _, info = create_session(model, device="auto")
    return Check("onnxruntime", True, f"{ort.__version__}: sessions run on {info.note}; providers in this build: {providers}")


def local_models() -> Check:
    """Installed local models; a built-in causal LM built before manifests carried its chat format
    answers a conversation from its last message only, and rebuilding it mends that."""
    from routing.builtins import BUILTINS
    from routing.chat_format import ChatFormat
    from routing.local_models import installed

    models = installed()
    names = ", ".join(m.name for m in models) or "none"
    one_turn = [m.name for m in models if m.kind == "causal-lm" and m.name in BUILTINS
                and ChatFormat.from_manifest(m.manifest) is None]
    if one_turn:
        return Check("local models", False, f"{len(models)} installed: {names}; {', '.join(one_turn)} was built before "
                     "multi-turn chat and answers a conversation from its last message only",
                     "lensroute models build-builtin " + " ".join(f"--only {n}" for n in one_turn), needed=False)
    return Check("local models", bool(models), f"{len(models)} installed: {names}", "lensroute models build-builtin",
                 needed=False)


def routers() -> Check:
    """Calibrated routers (what `route answer` needs): readable, and their pools still installed
    (a member removed since calibration makes that router fail at its first question)."""
    from recommender.errors import LensrouteError
    from routing.local_models import installed
    from routing.router_store import calibrate_command, load_router, summaries

    rows = summaries({m.name for m in installed()})
    if not rows:
        return Check("routers", False, "none calibrated (route answer needs one)", calibrate_command(), needed=False)
    for row in rows:
        try:
            load_router(row["name"])  # its arrays too, not only router.json
        except LensrouteError as exc:
            return Check("routers", False, str(exc), calibrate_command(row["name"]), needed=False)
        if not row["usable"]:
            return Check("routers", False, f"router {row['name']!r}: {row['problem']}", calibrate_command(row["name"]),
                         needed=False)
    return Check("routers", True, "; ".join(f"{r['name']} ({r['kind']}: {', '.join(r['pool'])})" for r in rows),
                 needed=False)


def _importable(name: str) -> bool:
    """Whether `import name` would find it, without importing it (PyTorch takes a second). The
    frozen app may carry a package's metadata without the package, so metadata is no proof."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name] is not None  # None: blocked, as the frozen app's tests do
    return importlib.util.find_spec(name) is not None


def torch() -> Check:
    from importlib import metadata

    if not _importable("torch"):
        return Check("PyTorch", False, "not installed: this lensroute ranks, routes and runs models, but cannot train, "
                                       "evaluate, build or benchmark them", "use the full install (installer/install.sh)",
                     needed=False)
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        version = "installed"
    return Check("PyTorch", True, f"{version}: training, evaluation, building and benchmarking models", needed=False)


def window() -> Check:
    """The Qt libraries load, and in an X11 session the X11 platform's libraries are there (a fresh
    Debian lacks some of either; `lensroute gui` makes the same X11 check before it starts Qt)."""
    try:
        import PySide6.QtGui  # noqa: F401  (loading it is the check)
        from PySide6 import __version__
    except ImportError as exc:
        return Check("desktop window", False, _first_line(exc), f"sudo apt-get install {DEBIAN_LIBRARIES}", needed=False)
    from app.gui.platform_check import missing_xcb_packages, uses_xcb

    missing = missing_xcb_packages() if uses_xcb() else []
    if missing:
        return Check("desktop window", False, f"Qt's X11 platform lacks: {' '.join(missing)}",
                     f"sudo apt-get install {' '.join(missing)}", needed=False)
    return Check("desktop window", True, f"PySide6 {__version__} loads (lensroute gui)", needed=False)


def run_checks(db: str | None = None) -> list[Check]:
    folder = _guarded("data folder", data_folder)
    try:
        encoder_check, model = text_encoder()
    except Exception as exc:
        encoder_check, model = Check("text encoder", False, _first_line(exc)), None
    return [
        folder,
        _guarded("catalogue", lambda: catalogue(db)),
        _guarded("ranker", ranker),
        encoder_check,
        _guarded("onnxruntime", lambda: onnx_runtime(model)),
        _guarded("local models", local_models),
        _guarded("routers", routers),
        _guarded("PyTorch", torch),
        _guarded("desktop window", window),
    ]


def exit_code(checks: list[Check]) -> int:
    failed = [c for c in checks if c.needed and not c.ok]
    return failed[0].exit_code if failed else 0


def report(checks: list[Check], version: str) -> dict:
    return {"version": version, "python": sys.version.split()[0], "executable": sys.executable,
            "frozen": bool(getattr(sys, "frozen", False)), "ok": exit_code(checks) == 0,
            "checks": [c.as_json() for c in checks]}
