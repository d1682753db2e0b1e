"""The GUI's typed settings, persisted as JSON under the config folder (`LENSROUTE_CONFIG` or the
platform's user config dir). Only window geometry/state bytes go to QSettings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from recommender import paths


@dataclass
class GuiSettings:
    last_page: int = 0
    description: str = ""
    dataset: str = ""
    task: str = ""
    metric: str = ""
    languages: str = ""
    top_k: int = 20
    candidates: str = ""
    measured: str = ""  # the Recommend page's file of results the user already has
    max_params: str = ""
    licences: str = ""
    open_weights: bool = False
    require_known: bool = False
    cost_weight: float = 0.0
    router_name: str = "default"
    route_question: str = ""
    route_temperature: float = 0.0  # 0: greedy replies
    serve_port: int = 8000  # the Route page's Serve switch (its API key is not kept)
    sparsity: float = 0.25
    extra: dict = field(default_factory=dict)

    @staticmethod
    def path() -> Path:
        return paths.config_dir() / "gui.json"

    @classmethod
    def load(cls) -> GuiSettings:
        try:
            raw = json.loads(cls.path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        known = {f.name: f.type for f in fields(cls)}
        values = {}
        defaults = cls()
        for name, value in (raw.items() if isinstance(raw, dict) else []):
            if name in known and isinstance(value, type(getattr(defaults, name))):
                values[name] = value  # a value of the wrong type is ignored, never a crash
        return cls(**values)

    def save(self) -> None:
        path = self.path()
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(".tmp")
        staging.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        staging.replace(path)
