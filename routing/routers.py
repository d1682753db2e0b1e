"""Routers: predict each pool model's quality on a query from the query's embedding.

Every router learns from a score matrix with holes (NaN = model not scored on that query) and
predicts a full [queries, models] quality matrix; the decision (`decide`) is then the same for
all: argmax over the models available for the query of predicted quality − λ · predicted cost.

  knn       similarity-weighted mean score of the k nearest labelled queries (cosine)
  mlp       multi-output MLP, masked cross-entropy on the scored pairs (torch to train,
            numpy to serve: no torch import on the routing path)
  lgbm      one LightGBM model per pool member (cross-entropy objective on 0..1 scores)
  cluster   k-means over query embeddings; per-cluster mean score per model, shrunk to the
            model's overall mean where a cluster has few labels
Baselines: random, best-single (highest mean training score), and oracle (the evaluation's
hindsight best; it has no fit/predict of its own).

Every router's state is plain arrays and JSON-able values (`state()` / `from_state`), so a
trained router saves to one .npz without pickle.
"""

from __future__ import annotations

import json
import math

import numpy as np

ROUTERS = ("knn", "mlp", "lgbm", "cluster")
BASELINES = ("best-single", "random", "oracle")


def _nan_mean(scores: np.ndarray, axis: int = 0) -> np.ndarray:
    counts = (~np.isnan(scores)).sum(axis)
    sums = np.nansum(scores, axis)
    overall = np.nansum(scores) / max(1, int((~np.isnan(scores)).sum()))
    return np.where(counts > 0, sums / np.maximum(counts, 1), overall)


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)).astype(np.float32)


class Router:
    name = "router"

    def fit(self, x: np.ndarray, scores: np.ndarray, seed: int = 0) -> Router:
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Router:
        raise NotImplementedError


class BestSingle(Router):
    name = "best-single"

    def fit(self, x: np.ndarray, scores: np.ndarray, seed: int = 0) -> BestSingle:
        self.means = _nan_mean(scores)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.means, (len(x), len(self.means))).copy()

    def state(self) -> dict[str, np.ndarray]:
        return {"means": self.means}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> BestSingle:
        router = cls()
        router.means = state["means"]
        return router


class RandomRouter(Router):
    """Uniform random quality predictions: with λ = 0 a uniformly random pick (seeded)."""

    name = "random"

    def fit(self, x: np.ndarray, scores: np.ndarray, seed: int = 0) -> RandomRouter:
        self.n_models, self.seed = scores.shape[1], seed
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.random.default_rng(self.seed).random((len(x), self.n_models))

    def state(self) -> dict[str, np.ndarray]:
        return {"n_models": np.array(self.n_models), "seed": np.array(self.seed)}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> RandomRouter:
        router = cls()
        router.n_models, router.seed = int(state["n_models"]), int(state["seed"])
        return router


class KNNRouter(Router):
    """Similarity-weighted mean scores of the k nearest labelled queries.

    Up to `IVF_MIN` labelled queries the search is exact (one matrix product). Above it, an
    inverted-file index (the FAISS IVF scheme, in numpy): the labelled queries are grouped by
    spherical k-means into ~2·√n lists stored contiguously, and a query scans only the `nprobe`
    lists whose centroids are closest — about 5% of the rows at 100,000 labelled queries, with the
    recall against the exact search printed by `tests/bench/bench_routing.py`.
    """

    name = "knn"
    IVF_MIN = 20_000

    def __init__(self, k: int = 32, temperature: float = 0.05, nprobe: int = 32) -> None:
        self.k, self.temperature, self.nprobe = k, temperature, nprobe
        self.centroids: np.ndarray | None = None
        self.offsets: np.ndarray | None = None

    def fit(self, x: np.ndarray, scores: np.ndarray, seed: int = 0) -> KNNRouter:
        x = _normalise(x)
        self.scores = np.nan_to_num(scores, nan=0.0).astype(np.float32)
        self.mask = (~np.isnan(scores)).astype(np.float32)
        self.prior = _nan_mean(scores).astype(np.float32)
        self.centroids = self.offsets = None
        if len(x) >= self.IVF_MIN:
            lists = int(2 * math.sqrt(len(x)))
            rng = np.random.default_rng(seed)
            sample = x[rng.choice(len(x), size=min(len(x), 50 * lists), replace=False)]
            self.centroids = lloyd(sample, sample[rng.choice(len(sample), size=lists, replace=False)], 10)
            assign = np.concatenate([np.argmax(x[s : s + 8192] @ self.centroids.T, axis=1)
                                     for s in range(0, len(x), 8192)])
            order = np.argsort(assign, kind="stable")
            x, self.scores, self.mask = x[order], self.scores[order], self.mask[order]
            self.offsets = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=lists))]).astype(np.int64)
        self.x = np.ascontiguousarray(x)
        return self

    def neighbours(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indices, similarities) of the k nearest labelled queries, [n, k] each."""
        q = _normalise(x)
        if self.centroids is None:
            sims = q @ self.x.T
            k = min(self.k, sims.shape[1])
            index = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            return index, np.take_along_axis(sims, index, axis=1)
        return self._ivf_neighbours(q)

    def _ivf_neighbours(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.centroids is not None and self.offsets is not None
        nprobe = min(self.nprobe, len(self.centroids))
        probes = np.argpartition(-(q @ self.centroids.T), nprobe - 1, axis=1)[:, :nprobe]
        out_index = np.zeros((len(q), self.k), np.int64)
        out_sims = np.full((len(q), self.k), -np.inf, np.float32)
        for i in range(len(q)):
            ranges = [(int(self.offsets[j]), int(self.offsets[j + 1])) for j in probes[i]]
            sims = np.concatenate([self.x[a:b] @ q[i] for a, b in ranges])
            rows = np.concatenate([np.arange(a, b) for a, b in ranges])
            k = min(self.k, len(sims))
            top = np.argpartition(-sims, k - 1)[:k]
            out_index[i, :k], out_sims[i, :k] = rows[top], sims[top]
        return out_index, out_sims

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), self.scores.shape[1]), np.float64)
        for start in range(0, len(x), 1024):  # bounded [chunk, n_labelled] similarity blocks
            index, sims = self.neighbours(x[start : start + 1024])
            weights = np.exp((sims - sims.max(axis=1, keepdims=True)) / self.temperature)[..., None]  # [n, k, 1]
            mask = self.mask[index]  # [n, k, m]
            total = (weights * mask).sum(1)
            # one pseudo-neighbour at the prior keeps a model that no neighbour was scored on sane
            weight_prior = weights.max(axis=1) * 0.1
            out[start : start + 1024] = ((weights * mask * self.scores[index]).sum(1) + weight_prior * self.prior) / (total + weight_prior)
        return out

    def state(self) -> dict[str, np.ndarray]:
        state = {"x": self.x, "scores": self.scores, "mask": self.mask, "prior": self.prior,
                 "k": np.array(self.k), "temperature": np.array(self.temperature), "nprobe": np.array(self.nprobe)}
        if self.centroids is not None and self.offsets is not None:
            state |= {"centroids": self.centroids, "offsets": self.offsets}
        return state

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> KNNRouter:
        router = cls(int(state["k"]), float(state["temperature"]), int(state.get("nprobe", 32)))
        router.x, router.scores, router.mask, router.prior = state["x"], state["scores"], state["mask"], state["prior"]
        router.centroids, router.offsets = state.get("centroids"), state.get("offsets")
        return router


def lloyd(x: np.ndarray, centroids: np.ndarray, iterations: int) -> np.ndarray:
    """Spherical Lloyd iterations (vectorised: the sums go through one matrix product)."""
    c = _normalise(centroids)
    for _ in range(iterations):
        assign = np.argmax(x @ c.T, axis=1)
        onehot = np.zeros((len(c), len(x)), np.float32)
        onehot[assign, np.arange(len(x))] = 1.0
        sums = onehot @ x
        empty = onehot.sum(1) == 0
        sums[empty] = c[empty]  # an empty list keeps its centroid
        c = _normalise(sums)
    return c


class MLPRouter(Router):
    name = "mlp"

    def __init__(self, hidden: int = 256, epochs: int = 80, lr: float = 1e-3, dropout: float = 0.2,
                 weight_decay: float = 1e-2, patience: int = 8) -> None:
        self.hidden, self.epochs, self.lr, self.dropout = hidden, epochs, lr, dropout
        self.weight_decay, self.patience = weight_decay, patience

    def fit(self, x: np.ndarray, scores: np.ndarray, seed: int = 0) -> MLPRouter:
        import torch
        from torch import nn

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(x))
        n_val = max(1, len(x) // 10)
        val, train = order[:n_val], order[n_val:]
        xt = torch.as_tensor(x, dtype=torch.float32)
        st = torch.as_tensor(np.nan_to_num(scores, nan=0.0), dtype=torch.float32)
        mt = torch.as_tensor(~np.isnan(scores), dtype=torch.float32)
        prior = _nan_mean(scores)
        net = nn.Sequential(nn.Linear(x.shape[1], self.hidden), nn.GELU(approximate="tanh"), nn.Dropout(self.dropout),
                            nn.Linear(self.hidden, scores.shape[1]))
        with torch.no_grad():  # start at the models' mean scores
            net[-1].bias.copy_(torch.logit(torch.as_tensor(np.clip(prior, 0.02, 0.98), dtype=torch.float32)))
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)

        def loss_of(rows: np.ndarray) -> torch.Tensor:
            logits = net(xt[rows])
            loss = nn.functional.binary_cross_entropy_with_logits(logits, st[rows], reduction="none")
            return (loss * mt[rows]).sum() / mt[rows].sum().clamp(min=1)

        best, best_state, bad = math.inf, None, 0
        generator = np.random.default_rng(seed + 1)
        for _ in range(self.epochs):
            net.train()
            for batch in np.array_split(generator.permutation(train), max(1, len(train) // 128)):
                optimizer.zero_grad(set_to_none=True)
                loss_of(batch).backward()
                optimizer.step()
            net.eval()
            with torch.no_grad():
                val_loss = float(loss_of(val))
            if val_loss < best - 1e-5:
                best, bad = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                bad += 1
                if bad >= self.patience:
                    break
        net.load_state_dict(best_state)  # type: ignore[arg-type]
        self.w1, self.b1 = net[0].weight.detach().numpy().T.copy(), net[0].bias.detach().numpy().copy()
        self.w2, self.b2 = net[3].weight.detach().numpy().T.copy(), net[3].bias.detach().numpy().copy()
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        h = x.astype(np.float32) @ self.w1 + self.b1
        h = 0.5 * h * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h**3)))  # GELU, tanh form as trained
        return 1.0 / (1.0 + np.exp(-(h @ self.w2 + self.b2)))

    def state(self) -> dict[str, np.ndarray]:
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> MLPRouter:
        router = cls()
        router.w1, router.b1, router.w2, router.b2 = state["w1"], state["b1"], state["w2"], state["b2"]
        return router


class LGBMRouter(Router):
    name = "lgbm"

    def __init__(self, n_estimators: int = 300, learning_rate: float = 0.05, num_leaves: int = 15) -> None:
        self.params = {"n_estimators": n_estimators, "learning_rate": learning_rate, "num_leaves": num_leaves}

    def fit(self, x: np.ndarray, scores: np.ndarray, seed: int = 0) -> LGBMRouter:
        import lightgbm as lgb

        self.boosters: list[str | float] = []
        for j in range(scores.shape[1]):
            rows = ~np.isnan(scores[:, j])
            y = scores[rows, j]
            if rows.sum() < 20 or np.ptp(y) == 0:
                self.boosters.append(float(y.mean()) if len(y) else float(np.nanmean(scores)))
                continue
            params = {"objective": "cross_entropy", "learning_rate": self.params["learning_rate"],
                      "num_leaves": self.params["num_leaves"], "min_data_in_leaf": 20, "bagging_fraction": 0.8,
                      "bagging_freq": 1, "feature_fraction": 0.5, "lambda_l2": 1.0, "seed": seed, "deterministic": True,
                      "force_row_wise": True, "num_threads": 2, "verbose": -1}
            booster = lgb.train(params, lgb.Dataset(x[rows], y), num_boost_round=self.params["n_estimators"])
            self.boosters.append(booster.model_to_string())
        self._loaded: list = []
        return self

    def _models(self) -> list:
        import lightgbm as lgb

        if len(self._loaded) != len(self.boosters):
            self._loaded = [lgb.Booster(model_str=b) if isinstance(b, str) else b for b in self.boosters]
        return self._loaded

    def predict(self, x: np.ndarray) -> np.ndarray:
        columns = [np.full(len(x), m) if isinstance(m, float) else m.predict(x) for m in self._models()]
        return np.clip(np.stack(columns, axis=1), 0.0, 1.0)

    def state(self) -> dict[str, np.ndarray]:
        return {"boosters": np.array(json.dumps(self.boosters))}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> LGBMRouter:
        router = cls()
        router.boosters, router._loaded = json.loads(str(state["boosters"])), []
        return router


class ClusterRouter(Router):
    name = "cluster"

    def __init__(self, clusters: int | None = None, shrink: float = 10.0, iterations: int = 50) -> None:
        self.clusters, self.shrink, self.iterations = clusters, shrink, iterations

    def fit(self, x: np.ndarray, scores: np.ndarray, seed: int = 0) -> ClusterRouter:
        x = _normalise(x)
        k = self.clusters or int(np.clip(len(x) // 100, 2, 64))
        self.centroids = kmeans(x, k, seed, self.iterations)
        assign = np.argmax(x @ self.centroids.T, axis=1)
        prior = _nan_mean(scores)
        table = np.empty((len(self.centroids), scores.shape[1]))
        for c in range(len(self.centroids)):
            member = scores[assign == c]
            counts = (~np.isnan(member)).sum(0)
            table[c] = (np.nansum(member, 0) + self.shrink * prior) / (counts + self.shrink)
        self.table = table
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.table[np.argmax(_normalise(x) @ self.centroids.T, axis=1)]

    def state(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids, "table": self.table}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> ClusterRouter:
        router = cls()
        router.centroids, router.table = state["centroids"], state["table"]
        return router


def kmeans(x: np.ndarray, k: int, seed: int, iterations: int) -> np.ndarray:
    """Spherical k-means (cosine) with k-means++ seeding; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    centroids = [x[rng.integers(len(x))]]
    closest = 1.0 - x @ centroids[0]
    for _ in range(1, k):
        weights = np.maximum(closest, 0) ** 2
        pick = rng.choice(len(x), p=weights / weights.sum()) if weights.sum() > 0 else rng.integers(len(x))
        centroids.append(x[pick])
        closest = np.minimum(closest, 1.0 - x @ x[pick])
    c = np.stack(centroids)
    for _ in range(iterations):
        assign = np.argmax(x @ c.T, axis=1)
        updated = np.stack([x[assign == j].sum(0) if (assign == j).any() else c[j] for j in range(k)])
        updated = _normalise(updated)
        if np.allclose(updated, c, atol=1e-6):
            break
        c = updated
    return c.astype(np.float32)


def make_router(name: str) -> Router:
    factories = {"knn": KNNRouter, "mlp": MLPRouter, "lgbm": LGBMRouter, "cluster": ClusterRouter,
                 "best-single": BestSingle, "random": RandomRouter}
    if name not in factories:
        raise KeyError(name)
    return factories[name]()


def router_class(name: str) -> type[Router]:
    return type(make_router(name))


# --- decision ------------------------------------------------------------------------------------------


class CostModel:
    """Predicted cost of each model for a query: a per-model line in the prompt's length, fitted
    on the training queries (exact for price-based estimates; a fair guess for latency)."""

    def fit(self, lengths: np.ndarray, costs: np.ndarray) -> CostModel:
        design = np.stack([np.ones(len(lengths)), lengths.astype(np.float64)], axis=1)
        self.coef = np.linalg.lstsq(design, costs, rcond=None)[0]  # [2, m]
        floor = np.nanmin(costs, axis=0)
        self.floor = np.where(np.isfinite(floor), np.maximum(floor, 0.0), 0.0)
        return self

    def predict(self, lengths: np.ndarray) -> np.ndarray:
        design = np.stack([np.ones(len(lengths)), lengths.astype(np.float64)], axis=1)
        return np.maximum(design @ self.coef, self.floor)

    def state(self) -> dict[str, np.ndarray]:
        return {"cost_coef": self.coef, "cost_floor": self.floor}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> CostModel:
        model = cls()
        model.coef, model.floor = state["cost_coef"], state["cost_floor"]
        return model


def decide(quality: np.ndarray, cost: np.ndarray, available: np.ndarray | None, lam: float) -> np.ndarray:
    """Index of the chosen model per query: argmax of quality − λ·cost among the available ones
    (λ = inf: the cheapest available; ties go to the lower cost)."""
    utility = -cost if math.isinf(lam) else quality - lam * cost - 1e-12 * cost
    if available is not None:
        utility = np.where(available, utility, -np.inf)
    return np.argmax(utility, axis=1)
