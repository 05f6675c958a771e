"""Latency predictor: an MLP on an architecture encoding, trained on architectures sampled from
a space and measured on this device (Latency-aware DARTS, Xu et al. 2020).

Encoding (DARTS space): for each cell type, the ``(edges, ops)`` matrix of per-edge op weights
without the ``none`` column - a one-hot row on each of the 8 chosen edges for a sampled
genotype, and during search the expected matrix ``p(edge kept) * softmax(alpha)`` renormalised
over the real ops (see :func:`dnas.costloss.darts_expected_weights`), so the same network maps
a discrete genotype and a distribution to milliseconds, and is differentiable in the latter.
By default (``encoding="pooled"``) the matrix is summed over edges of the same kind - normal
edges, reduction edges from the cell inputs (stride 2, full resolution) and reduction edges
between nodes - because an op's latency depends on its shape and stride, not on which node it
feeds. That is a fixed linear map of the per-edge matrix (21 instead of 196 inputs) and it is
what makes the predictor sample-efficient: on 105 measured training networks (C=8, 5 layers,
16x16) the MLP reached 2.0% mean relative error on 45 held-out ones with the pooled encoding
and 9.5% with the raw per-edge encoding (``encoding="edge"``), which overfits.

Model: a linear term plus a two-hidden-layer ReLU MLP on the flat encoding, trained with MSE on
standardised log-latency (relative error is what matters across sizes; latency is close to a
sum of per-op costs, which the linear term captures at once, the MLP learns the interactions),
full-batch Adam, an ensemble of seeded members averaged in log space. All randomness comes
from ``seed``; the global torch RNG is left untouched.

Spaces plug in through their :class:`~dnas.spaces.base.SearchSpace` object:
``space.latency_adapter(**shape)`` returns an adapter with ``sample``, ``encode``, ``build``,
``input_shape``, ``table_estimate`` and ``to_dict``/``from_dict`` of genotypes at a given
network size (:class:`DartsLatencySpace` here, the mobile one in :mod:`dnas.spaces.mobile`);
``from_options`` maps the CLI's generic size options to an adapter's own.
"""
from __future__ import annotations

import random
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from dnas.errors import ConfigError, DataError
from dnas.genotype import Genotype
from dnas.io import save_torch
from dnas.ops import DARTS_PRIMITIVES
from dnas.opcost import NetShape, build_net, cost_matrices, edge_index, genotype_cost, genotype_onehot
from dnas.predictors.metrics import kendall_tau
from dnas.predictors.mlp import single_thread


# ---------------------------------------------------------------------------------- DARTS space
class DartsLatencySpace:
    """Genotypes of the DARTS cell space, measured as NetworkCIFAR of a given size."""

    name = "darts"

    def __init__(self, C: int = 8, layers: int = 5, image_size: int = 32, in_channels: int = 3, num_classes: int = 10,
                 primitives: Sequence[str] = tuple(DARTS_PRIMITIVES), steps: int = 4, encoding: str = "pooled") -> None:
        if encoding not in ("pooled", "edge"):
            raise ConfigError(f"encoding: pooled or edge, got {encoding!r}")
        self.net = NetShape(C, layers, image_size, in_channels, num_classes, steps)
        self.primitives = tuple(primitives)
        self.encoding = encoding
        self.real = [k for k, p in enumerate(self.primitives) if p != "none"]
        # edges whose input is a cell input (index 0 or 1): stride 2 in reduction cells
        self.input_edges = torch.tensor([1.0 if j < 2 else 0.0 for i in range(steps) for j in range(i + 2)])

    @classmethod
    def from_options(cls, *, channels: int, layers: int, image_size: int, in_channels: int, num_classes: int,
                     encoding: str = "pooled", **shape: Any) -> "DartsLatencySpace":
        return cls(C=channels, layers=layers, image_size=image_size, in_channels=in_channels, num_classes=num_classes,
                   encoding=encoding, **shape)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.net.input_shape

    def shape(self) -> dict:
        n = self.net
        return dict(C=n.C, layers=n.layers, image_size=n.image_size, in_channels=n.in_channels,
                    num_classes=n.num_classes, primitives=list(self.primitives), steps=n.steps, encoding=self.encoding)

    def sample(self, n: int, seed: int) -> list[Genotype]:
        """``n`` distinct uniformly random genotypes: per node 2 distinct inputs, each with a
        uniformly random non-``none`` op (the derivation never keeps ``none``)."""
        rng = random.Random(seed)
        ops = [self.primitives[k] for k in self.real]
        steps = self.net.steps
        concat = list(range(2, steps + 2))
        out, seen = [], set()
        for _ in range(100 * n):
            cells = []
            for _c in range(2):
                cell = []
                for i in range(steps):
                    for j in sorted(rng.sample(range(i + 2), 2)):
                        cell.append((rng.choice(ops), j))
                cells.append(cell)
            g = Genotype(cells[0], concat, cells[1], concat)
            if g.hash() not in seen:
                seen.add(g.hash())
                out.append(g)
            if len(out) == n:
                return out
        raise ConfigError(f"samples: could not draw {n} distinct genotypes")

    def encode(self, genotypes: Sequence[Genotype]) -> torch.Tensor:
        return torch.cat([self.encode_weights(*genotype_onehot(g, self.primitives, self.net.steps)) for g in genotypes])

    def encode_weights(self, w_normal: torch.Tensor, w_reduce: torch.Tensor) -> torch.Tensor:
        """``(1, features)`` encoding of ``(edges, ops)`` matrices (columns in ``primitives``
        order): one-hot counts of a genotype, or expected weights during search."""
        n, r = w_normal[:, self.real].float(), w_reduce[:, self.real].float()
        if self.encoding == "edge":
            return torch.cat([n.flatten(), r.flatten()]).unsqueeze(0)
        m = self.input_edges.to(r.device).unsqueeze(1)
        return torch.cat([n.sum(0), (r * m).sum(0), (r * (1 - m)).sum(0)]).unsqueeze(0)

    def build(self, genotype: Genotype) -> nn.Module:
        return build_net(genotype, self.net)

    def table_estimate(self, genotypes: Sequence[Genotype], table) -> list[float]:
        mats = cost_matrices(self.primitives, self.net, "latency", table)
        return [genotype_cost(g, self.primitives, mats, self.net.steps) for g in genotypes]

    def to_dict(self, g: Genotype) -> dict:
        return g.to_dict(with_meta=False)

    def from_dict(self, d: dict) -> Genotype:
        return Genotype.from_dict(d)


def make_space(name: str, **shape: Any):
    """The latency adapter of space ``name`` at ``shape`` (its own keys, as saved in datasets)."""
    from dnas.spaces.base import get_space

    return get_space(name).latency_adapter(**shape)


# ---------------------------------------------------------------------------------- model
class LatencyMLP(nn.Module):
    """``linear(x) + mlp(x)``: an additive cost model plus learned interactions."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.linear = nn.Linear(n_in, 1)
        self.mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.linear(x) + self.mlp(x)).squeeze(-1)


class LatencyPredictor(nn.Module):
    """Milliseconds from an encoding. ``fit(X, ms)`` trains; ``forward(X)`` is differentiable
    (use it inside a search loss); ``predict(X)`` returns numpy milliseconds."""

    def __init__(self, n_in: int, *, hidden: int = 32, ensemble: int = 3, epochs: int = 600, lr: float = 3e-3,
                 weight_decay: float = 1e-2, seed: int = 0, meta: dict | None = None) -> None:
        super().__init__()
        if n_in < 1 or hidden < 1 or ensemble < 1 or epochs < 0:
            raise ConfigError("latency predictor: n_in, hidden, ensemble must be >= 1 and epochs >= 0")
        self.n_in, self.hidden, self.ensemble, self.epochs = int(n_in), int(hidden), int(ensemble), int(epochs)
        self.lr, self.weight_decay, self.seed = float(lr), float(weight_decay), int(seed)
        self.meta = dict(meta or {})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.members = nn.ModuleList(LatencyMLP(self.n_in, self.hidden) for _ in range(self.ensemble))
        self.register_buffer("x_mean", torch.zeros(self.n_in))
        self.register_buffer("y_stats", torch.tensor([0.0, 1.0]))  # mean, std of log ms
        self.fitted = False

    def fit(self, X: torch.Tensor, ms: Sequence[float]) -> "LatencyPredictor":
        X = torch.as_tensor(X, dtype=torch.float32)
        y = torch.log(torch.as_tensor(np.asarray(ms, dtype=np.float32)))
        if X.ndim != 2 or X.shape[1] != self.n_in or len(X) != len(y) or len(y) < 2:
            raise ConfigError(f"latency predictor fit: need (N, {self.n_in}) encodings and N >= 2 latencies, got {tuple(X.shape)} and {len(y)}")
        if not torch.isfinite(y).all():
            raise DataError("latency predictor fit: latencies must be positive and finite")
        self.x_mean.copy_(X.mean(0))
        mu, sd = float(y.mean()), float(y.std()) or 1.0
        self.y_stats.copy_(torch.tensor([mu, sd]))
        yn, Xc = (y - mu) / sd, X - self.x_mean
        with torch.random.fork_rng(devices=[]), single_thread():
            for m, member in enumerate(self.members):
                torch.manual_seed(self.seed * 1009 + m)
                for p in member.parameters():  # fresh, seeded initialisation
                    if p.ndim > 1:
                        nn.init.kaiming_uniform_(p, a=5 ** 0.5)
                    else:
                        nn.init.zeros_(p)
                opt = torch.optim.Adam(member.parameters(), lr=self.lr, weight_decay=self.weight_decay)
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(self.epochs, 1))
                member.train()
                for _ in range(self.epochs):
                    opt.zero_grad()
                    nn.functional.mse_loss(member(Xc), yn).backward()
                    opt.step()
                    sched.step()
                member.eval()
        self.fitted = True
        return self

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Xc = X.float() - self.x_mean
        z = torch.stack([m(Xc) for m in self.members]).mean(0)
        return torch.exp(z * self.y_stats[1] + self.y_stats[0])

    def predict(self, X: torch.Tensor) -> np.ndarray:
        if not self.fitted:
            raise ConfigError("latency predictor: call fit() before predict()")
        with torch.no_grad(), single_thread():
            return self(torch.as_tensor(X)).double().numpy()

    # ------------------------------------------------------------------ persistence
    def options(self) -> dict:
        return dict(n_in=self.n_in, hidden=self.hidden, ensemble=self.ensemble, epochs=self.epochs, lr=self.lr,
                    weight_decay=self.weight_decay, seed=self.seed)

    def save(self, path) -> None:
        save_torch(path, {"format": "dnas.latency_predictor", "options": self.options(), "meta": self.meta,
                          "state": self.state_dict()})

    @classmethod
    def load(cls, path) -> "LatencyPredictor":
        from pathlib import Path

        p = Path(path)
        if not p.exists():
            raise ConfigError(f"latency_predictor: file {str(p)!r} does not exist; create it with 'dnas latency fit'")
        try:
            d = torch.load(p, map_location="cpu", weights_only=True)
            assert d["format"] == "dnas.latency_predictor"
        except Exception:
            raise DataError(f"latency predictor {p}: not a file written by 'dnas latency fit'") from None
        model = cls(**d["options"], meta=d["meta"])
        model.load_state_dict(d["state"])
        model.fitted = True
        model.eval()
        return model


# ---------------------------------------------------------------------------------- data + scoring
def collect(space, samples: int, *, seed: int = 0, device: str = "cpu", warmup: int = 3, repeats: int = 11,
            threads: int | None = 1, table=None, clock: str = "auto") -> dict:
    """Sample ``samples`` genotypes, measure each network interleaved (median ms), and add the
    lookup-table estimate when ``table`` is given. Returns a JSON-ready dataset."""
    from dnas.latency import device_key, measure_modules

    t0 = time.perf_counter()
    genotypes = space.sample(samples, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nets = [space.build(g) for g in genotypes]
    ms = measure_modules(nets, [space.input_shape] * len(nets), device=device, warmup=warmup, repeats=repeats,
                         threads=threads, seed=seed, clock=clock)
    measure_s = time.perf_counter() - t0
    records = [{"genotype": space.to_dict(g), "latency_ms": m} for g, m in zip(genotypes, ms)]
    table_s = None
    if table is not None:
        t1 = time.perf_counter()
        for r, est in zip(records, space.table_estimate(genotypes, table)):
            r["table_ms"] = est
        table_s = time.perf_counter() - t1
    return {
        "format": "dnas.latency_data",
        "space": space.name,
        "shape": space.shape(),
        "device_key": device_key(device, threads, clock),
        "protocol": {"warmup": warmup, "repeats": repeats, "threads": threads, "clock": clock,
                     "statistic": "median, interleaved", "seed": seed},
        "seconds": {"measure": round(measure_s, 2), "table": None if table_s is None else round(table_s, 2)},
        "records": records,
    }


def load_dataset(data: dict | str):
    """``(space, genotypes, latencies, dataset)`` from a dataset dict or JSON file."""
    from pathlib import Path

    if not isinstance(data, dict):
        p = Path(data)
        if not p.exists():
            raise ConfigError(f"data: file {str(p)!r} does not exist; create it with 'dnas latency collect'")
        from dnas.errors import DnasError
        from dnas.io import read_json

        try:
            data = read_json(p, "latency data")
        except DnasError as e:
            raise DataError(f"data: {e}") from None
    if not isinstance(data, dict) or data.get("format") != "dnas.latency_data":
        raise DataError("data: not a dataset written by 'dnas latency collect'")
    space = make_space(data["space"], **data["shape"])
    gs = [space.from_dict(r["genotype"]) for r in data["records"]]
    return space, gs, np.array([r["latency_ms"] for r in data["records"]]), data


def rel_errors(pred: Sequence[float], target: Sequence[float]) -> np.ndarray:
    p, t = np.asarray(pred, float), np.asarray(target, float)
    return np.abs(p - t) / t


def score(pred: Sequence[float], target: Sequence[float]) -> dict:
    e = rel_errors(pred, target)
    return {"mean_rel_error": round(float(e.mean()), 5), "max_rel_error": round(float(e.max()), 5),
            "kendall_tau": round(kendall_tau(pred, target), 5)}


def split(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < train_fraction < 1:
        raise ConfigError(f"train_fraction: must be in (0, 1), got {train_fraction}")
    idx = np.random.default_rng(seed).permutation(n)
    k = min(max(int(round(n * train_fraction)), 2), n - 1)
    return idx[:k], idx[k:]


def fit_and_score(data: dict | str, *, train_fraction: float = 0.7, seed: int = 0, **options: Any) -> tuple[LatencyPredictor, dict]:
    """Fit a predictor on the training part of a dataset; score it and the table-sum baselines
    on the held-out part."""
    space, gs, y, d = load_dataset(data)
    tr, te = split(len(gs), train_fraction, seed)
    X = space.encode(gs)
    t0 = time.perf_counter()
    pred = LatencyPredictor(X.shape[1], seed=seed, meta={"space": space.name, "shape": space.shape(),
                                                          "device_key": d.get("device_key")}, **options)
    pred.fit(X[tr], y[tr])
    fit_s = time.perf_counter() - t0
    out = {"space": space.name, "shape": space.shape(), "device_key": d.get("device_key"),
           "train_size": int(len(tr)), "test_size": int(len(te)), "fit_seconds": round(fit_s, 2),
           "latency_ms": {"min": round(float(y.min()), 3), "median": round(float(np.median(y)), 3), "max": round(float(y.max()), 3)},
           **score(pred.predict(X[te]), y[te])}
    if all("table_ms" in r for r in d["records"]):
        t = np.array([r["table_ms"] for r in d["records"]])
        out["table_sum"] = score(t[te], y[te])
        # the table sum misses per-network overhead; a least-squares line on the training archs
        a, b = np.polyfit(t[tr], y[tr], 1)
        out["table_sum_calibrated"] = score(a * t[te] + b, y[te])
    return pred, out
