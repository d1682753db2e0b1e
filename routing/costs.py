"""Per-query cost of each model: given, estimated from token prices, or (with no common basis) uniform.

Neither public routing table records a per-query cost, yet the cost–quality trade-off needs one.
Costs are resolved per table on one basis for every model, in this order:
  usd            every model has cost_usd on its rows (holes filled with that model's median)
  usd-estimated  the models without cost_usd have token prices (the catalogue's model metadata
                 first, then resources/model_prices.yaml or a --prices file): cost = (input
                 price × prompt tokens + output price × OUTPUT_TOKENS) / 1e6, prompt tokens
                 estimated as characters / 4
  uniform        no common basis: every query costs 1 on every model, and the note says so
Local models calibrated on the user's machine use measured latency (seconds) instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender import paths
from recommender.errors import FormatError, NotFoundError

OUTPUT_TOKENS = 256  # assumed answer length for the estimate; both price sides matter this way
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class Price:
    input_per_1m: float
    output_per_1m: float
    source: str


def load_price_file(path: Path) -> dict[str, Price]:
    import yaml

    if not path.is_file():
        raise NotFoundError(f"no such price file: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return {str(name): Price(float(v["input_usd_per_1m"]), float(v["output_usd_per_1m"]), str(v.get("source", path.name)))
                for name, v in data.items()}
    except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as exc:
        raise FormatError(f"{path}: each model needs input_usd_per_1m and output_usd_per_1m ({exc})") from exc


def catalogue_prices(models: list[str]) -> dict[str, Price]:
    """Token prices kept in the catalogue's model metadata (any source's *price_usd_per_1M_tokens)."""
    url = paths.database_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return {}
    import sqlalchemy as sa

    from recommender.store import Store
    from recommender.store.schema import models as models_table

    found: dict[str, Price] = {}
    try:
        store = Store.open()
    except Exception:  # an unreadable catalogue must not stop routing: costs fall back
        return {}
    wanted = {m.lower(): m for m in models}
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(models_table.c.name, models_table.c.extra)
                            .where(sa.func.lower(models_table.c.name).in_(list(wanted)))).fetchall()
    for name, extra in rows:
        price = _price_in(json.loads(extra) if extra else {})
        if price:
            found[wanted[name.lower()]] = Price(*price, source="catalogue")
    return found


def _price_in(value) -> tuple[float, float] | None:  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        ins = value.get("input_price_usd_per_1M_tokens")
        outs = value.get("output_price_usd_per_1M_tokens")
        if isinstance(ins, (int, float)) and isinstance(outs, (int, float)):
            return float(ins), float(outs)
        for inner in value.values():
            if (price := _price_in(inner)) is not None:
                return price
    return None


def default_prices(models: list[str], extra_file: Path | None = None) -> dict[str, Price]:
    bundled = load_price_file(paths.resources_dir() / "model_prices.yaml")
    prices = {m: bundled[m] for m in models if m in bundled}
    prices.update(catalogue_prices(models))
    if extra_file is not None:
        prices.update({m: p for m, p in load_price_file(extra_file).items() if m in models})
    return prices


def estimated_cost(price: Price, prompts: list[str]) -> np.ndarray:
    tokens = np.array([max(1.0, len(p) / CHARS_PER_TOKEN) for p in prompts])
    return (price.input_per_1m * tokens + price.output_per_1m * OUTPUT_TOKENS) / 1e6


def resolve_costs(models: list[str], prompts: list[str], given: np.ndarray,
                  price_lookup=None) -> tuple[np.ndarray, str, list[str]]:  # type: ignore[no-untyped-def]
    costs = given.copy()
    with_cost = [j for j in range(len(models)) if not np.isnan(given[:, j]).all()]
    without = [j for j in range(len(models)) if j not in with_cost]
    notes = []
    for j in with_cost:
        holes = np.isnan(costs[:, j])
        if holes.any():
            costs[holes, j] = np.nanmedian(given[:, j])
            notes.append(f"{int(holes.sum())} null costs of {models[j]} filled with its median cost")
    if not without:
        return costs, "usd", notes
    prices = (price_lookup or default_prices)([models[j] for j in without])
    lacking = [models[j] for j in without if models[j] not in prices]
    if lacking:
        notes.append(f"no per-query cost and no price for {', '.join(lacking)}: cost is uniform (1 per query), "
                     "so the cost axis carries no information; pass --prices FILE to fix")
        return np.ones_like(given), "uniform", notes
    for j in without:
        price = prices[models[j]]
        costs[:, j] = estimated_cost(price, prompts)
    sources = sorted({f"{models[j]}: {prices[models[j]].source}" for j in without})
    notes.append(f"cost_usd is null for {len(without)} model(s): estimated from token prices "
                 f"(prompt chars/{CHARS_PER_TOKEN:g} input tokens + {OUTPUT_TOKENS} output tokens) — {'; '.join(sources)}")
    return costs, "usd-estimated", notes
