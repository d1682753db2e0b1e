"""Trained routers on disk: `$LENSROUTE_HOME/routers/<name>/` holding router.npz (the router's
arrays and the cost model's; no pickle) and router.json (kind, pool, cost basis, calibration)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from recommender import paths
from recommender.errors import FormatError, NotFoundError
from routing.routers import CostModel, Router, router_class

DEFAULT_NAME = "default"


@dataclass
class SavedRouter:
    name: str
    router: Router
    cost_model: CostModel
    meta: dict

    @property
    def pool(self) -> list[str]:
        return list(self.meta["pool"])


def calibrate_command(name: str = DEFAULT_NAME) -> str:
    """The command that (re)makes router `name`, for the messages that send the user to it."""
    return "lensroute route calibrate" + ("" if name == DEFAULT_NAME else f" --name {name}")


def routers_dir() -> Path:
    return paths.home_dir() / "routers"


def saved_names() -> list[str]:
    """Names of the routers saved here, sorted (what `route answer --router` and the Route page offer)."""
    folder = routers_dir()
    return sorted(p.name for p in folder.iterdir() if (p / "router.json").is_file()) if folder.is_dir() else []


def _meta(name: str) -> dict | None:
    """A saved router's router.json (None when unreadable; `load_router` says why)."""
    try:
        meta = json.loads((routers_dir() / name / "router.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def routing_over(model: str) -> list[str]:
    """The saved routers whose pool holds `model` (removing it leaves them unable to answer)."""
    return [name for name in saved_names() if model in ((_meta(name) or {}).get("pool") or [])]


def summaries(installed: set[str]) -> list[dict]:
    """One row per saved router for `route list`: what it routes over, how well it did in
    calibration, and whether it can answer here (every pool member `installed`)."""
    rows = []
    for name in saved_names():
        meta = _meta(name)
        folder = routers_dir() / name
        if meta is None:
            rows.append({"name": name, "usable": False, "problem": "router.json is unreadable: calibrate it again",
                         "path": str(folder)})
            continue
        pool = [str(m) for m in meta.get("pool") or []]
        gone = [m for m in pool if m not in installed]
        calibrated = meta.get("calibrated_at") or datetime.fromtimestamp(
            (folder / "router.json").stat().st_mtime, UTC).isoformat(timespec="seconds")
        rows.append({"name": name, "kind": meta.get("kind"), "pool": pool, "questions": meta.get("questions"),
                     "data": meta.get("data"), "cross_validated": meta.get("cross_validated"),
                     "calibrated_at": calibrated, "usable": not gone,
                     "problem": f"not installed: {', '.join(gone)}" if gone else None, "path": str(folder)})
    return rows


def save_router(name: str, router: Router, cost_model: CostModel, meta: dict) -> Path:
    folder = routers_dir() / name
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"router.{k}": v for k, v in router.state().items()} | {f"cost.{k}": v for k, v in cost_model.state().items()}
    staging = folder / "router.tmp.npz"
    np.savez(staging, **arrays)
    os.replace(staging, folder / "router.npz")
    (folder / "router.json").write_text(json.dumps({**meta, "kind": router.name}, indent=2) + "\n", encoding="utf-8")
    return folder


def load_router(name: str = DEFAULT_NAME) -> SavedRouter:
    folder = routers_dir() / name
    if not (folder / "router.json").is_file() or not (folder / "router.npz").is_file():
        saved = saved_names()
        others = f" (saved here: {', '.join(saved)})" if saved else ""
        raise NotFoundError(f"no trained router {name!r}{others}: run `{calibrate_command(name)}` first (every installed "
                            "model on the bundled questions; --pool NAMES --data FILE.jsonl for your own)")
    try:
        meta = json.loads((folder / "router.json").read_text(encoding="utf-8"))
        with np.load(folder / "router.npz", allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
        router = router_class(meta["kind"]).from_state({k.removeprefix("router."): v for k, v in state.items() if k.startswith("router.")})
        cost = CostModel.from_state({k.removeprefix("cost."): v for k, v in state.items() if k.startswith("cost.")})
    except (KeyError, ValueError, OSError, json.JSONDecodeError) as exc:
        raise FormatError(f"router {name!r} in {folder} is unreadable ({exc}); calibrate it again") from exc
    return SavedRouter(name, router, cost, meta)
