"""Scoring candidate networks: short real training plus cost, cached, run through an executor.

:func:`evaluate_candidate` is the unit of work (a plain, picklable function of a genotype dict
and a settings dict, so Ray can ship it to a worker): it builds the network, counts params and
multiply-adds, measures latency when asked, skips training when a hard limit (``max_params``,
``max_macs``, ``max_latency_ms``) is already broken (a constraint violator's error does not
matter to NSGA-II, which ranks violators by violation first), and otherwise trains for
``epochs`` epochs on the training split, recomputes the BN statistics (short runs leave the
running averages far behind the weights) and reports the validation error. A diverging run is
scored as error 1.0 (a real, reproducible property of that network, so retrying it is useless);
any other exception propagates so the executor retries it.

:class:`NetworkProblem` is the pymoo problem. Its evaluation collects the uncached candidates
of a generation, hands them to a :mod:`dnas.trials` executor in one batch (serial, local Ray
or a Ray cluster), and caches every result by network hash, so a network is never trained
twice and a resumed run replays finished generations from the cache. A candidate whose every
attempt failed is kept with ``error`` set and scored as infeasible, never dropped.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
from pymoo.core.problem import Problem

from dnas.errors import ConfigError
from dnas.evolve.encoding import NetworkSpace
from dnas.evolve.network import EvolvedNetwork, NetworkGenotype

OBJECTIVES = ("error", "params", "macs", "latency")
#: Stand-in for an objective a failed evaluation could not measure: finite (pymoo's crowding
#: distance turns inf - inf into NaN) and worse than any real value.
FAILED_VALUE = 1e15
LIMITS = {"max_params": "params", "max_macs": "macs", "max_latency_ms": "latency"}

_DATA_CACHE: dict[tuple, dict[str, Any]] = {}


def _prepared_data(s: dict[str, Any]) -> dict[str, Any]:
    """Train/val tensors and transforms for ``s``, loaded once per process (workers reuse them)."""
    key = (s["data"], s.get("image_size"), s.get("max_samples"), s["seed"], s["val_fraction"])
    if key not in _DATA_CACHE:
        from dnas.data import load_dataset, split_dataset
        from dnas.searchdata import subsample
        from dnas.transforms import default_eval_transform, default_train_transform

        data = subsample(load_dataset(s["data"], image_size=s.get("image_size")), s.get("max_samples"), s["seed"])
        splits = split_dataset(data, seed=s["seed"], val_fraction=s["val_fraction"], test_fraction=s.get("test_fraction", 0.2))
        _DATA_CACHE.clear()  # one dataset per process is enough
        _DATA_CACHE[key] = dict(
            train=splits.train, val=splits.val, num_classes=data.num_classes, in_channels=data.in_channels,
            image_size=data.image_size, train_tf=default_train_transform(data, augment=s.get("augment", False)),
            eval_tf=default_eval_transform(data),
        )
    return _DATA_CACHE[key]


def _train_briefly(model: nn.Module, d: dict[str, Any], s: dict[str, Any]) -> tuple[float, bool]:
    """SGD + cosine for ``epochs`` epochs, BN statistics recalibrated; returns (validation error, diverged)."""
    from dnas.data import Batches
    from dnas.trainer import evaluate

    train = Batches(*d["train"], s["batch_size"], shuffle=True, seed=s["seed"], drop_last=len(d["train"][1]) > s["batch_size"],
                    transform=d["train_tf"])
    val = Batches(*d["val"], 256, shuffle=False, transform=d["eval_tf"])
    opt = torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=0.9, weight_decay=s["weight_decay"])
    steps = max(1, s["epochs"] * len(train))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    for epoch in range(s["epochs"]):
        train.set_epoch(epoch)
        for xb, yb in train:
            logits, _ = model(xb)
            loss = nn.functional.cross_entropy(logits, yb)
            if not math.isfinite(float(loss.detach())):
                return 1.0, True
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
    _recalibrate_bn(model, train, max_batches=20)
    _, acc = evaluate(model, val, torch.device("cpu"))
    return 1.0 - acc, False


@torch.no_grad()
def _recalibrate_bn(model: nn.Module, batches, max_batches: int) -> None:
    """Replace BN running statistics by exact averages over training batches.

    Why: after a few dozen steps the running averages (momentum 0.1) still lag far behind the
    moving weights, so eval-mode error is near chance although the network has learnt (on digits
    after one epoch: 89% accuracy with batch statistics, 10% with running ones). Short-training
    proxies therefore recompute them, as one-shot NAS evaluators do.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    batches.set_epoch(0)
    for b, (xb, _) in enumerate(batches):
        if b >= max_batches:
            break
        model(xb)
    for bn, m in zip(bns, saved):
        bn.momentum = m


def evaluate_candidate(genotype: dict, settings: dict) -> dict[str, Any]:
    """Cost and short-training error of one network genotype (see the module docstring)."""
    from dnas.cost import count_macs, count_params

    t0 = time.perf_counter()
    s = settings
    g = NetworkGenotype.from_dict(genotype)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(int(s.get("threads") or 1))
    try:
        d = _prepared_data(s)
        shape = (d["in_channels"], d["image_size"], d["image_size"])
        torch.manual_seed(s["seed"])
        model = EvolvedNetwork(g, num_classes=d["num_classes"], in_channels=d["in_channels"])
        out: dict[str, Any] = {"params": count_params(model), "macs": count_macs(model, shape)}
        if "latency" in s["objectives"] or s.get("max_latency_ms") is not None:
            from dnas.latency import measure_module

            out["latency"] = measure_module(model, shape, repeats=int(s.get("latency_repeats", 10)), threads=1, warmup=2)
        broken = [k for k, obj in LIMITS.items() if s.get(k) is not None and out[obj] > float(s[k])]
        if broken:
            out.update(error=None, skipped=f"over {broken[0]}")
        else:
            out["error"], out["diverged"] = _train_briefly(model, d, s)
        out["seconds"] = round(time.perf_counter() - t0, 3)
        return out
    finally:
        torch.set_num_threads(threads_before)


@dataclass
class EvalCache:
    """Every evaluation so far, by network hash (the run's archive)."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: str) -> dict[str, Any]:
        return self.records[key]

    def put(self, key: str, record: dict[str, Any]) -> None:
        self.records[key] = record


def objective_vector(result: dict[str, Any] | None, objectives: Sequence[str]) -> list[float]:
    """The minimised objectives of a result; a failed or skipped candidate gets error 1.0."""
    if result is None:
        return [FAILED_VALUE] * len(objectives)
    vals = []
    for o in objectives:
        v = result.get(o)
        if o == "error" and v is None:
            v = 1.0
        vals.append(float(v) if v is not None else FAILED_VALUE)
    return vals


def constraint_vector(result: dict[str, Any] | None, settings: dict[str, Any]) -> list[float]:
    """``<= 0`` means satisfied: relative excess over each limit; a failed evaluation violates."""
    limits = [(k, obj) for k, obj in LIMITS.items() if settings.get(k) is not None]
    failed = 1.0 if (result is None or result.get("failed")) else 0.0
    g = [failed]
    for k, obj in limits:
        v = result.get(obj) if result else None
        g.append(FAILED_VALUE if v is None else float(v) / float(settings[k]) - 1.0)
    return g


def _stop_if_all_failed(records, new: list[dict[str, Any]]) -> None:
    """Stop the search in one line when every evaluation so far failed for one reason (bad data,
    a broken install): retrying more candidates would only repeat it, and a front of failures is
    not a result."""
    records = list(records)
    errors = {r.get("error_message") for r in records if r.get("failed")}
    if new and len(errors) == 1 and all(r.get("failed") for r in records):
        from dnas.errors import DnasError

        raise DnasError(f"evolve: all {len(records)} evaluations failed with the same error: {errors.pop()}; fix its cause "
                        "and start again")


class NetworkProblem(Problem):
    """Minimise ``objectives`` of decoded networks subject to the hard limits in ``settings``.

    ``executor`` is any :mod:`dnas.trials` executor; ``on_results(records)`` is called with the
    new evaluations of each batch (the run appends them to its archive file before continuing).
    """

    def __init__(
        self,
        space: NetworkSpace,
        settings: dict[str, Any],
        executor,
        cache: EvalCache | None = None,
        on_results: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        objectives = list(settings["objectives"])
        bad = [o for o in objectives if o not in OBJECTIVES]
        if bad or len(objectives) < 2 or len(set(objectives)) != len(objectives):
            raise ConfigError(f"objectives: need >= 2 distinct of {', '.join(OBJECTIVES)}, got {','.join(objectives)}")
        self.space = space
        self.settings = settings
        self.objectives = objectives
        self.executor = executor
        self.cache = cache if cache is not None else EvalCache()
        self.on_results = on_results
        self.evaluated = 0  # evaluations actually run (cache misses)
        n_constr = 1 + sum(settings.get(k) is not None for k in LIMITS)
        super().__init__(n_var=space.n_var, n_obj=len(objectives), n_ieq_constr=n_constr,
                         xl=space.lower, xu=space.upper, vtype=int)

    def evaluate_networks(self, X: np.ndarray) -> list[dict[str, Any]]:
        """Records (``key``, ``x``, ``genotype``, results) for the rows of ``X``, running only uncached ones."""
        nets = [self.space.decode(x) for x in X]
        keys = [n.hash() for n in nets]
        todo: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in self.cache and k not in todo:
                todo[k] = i
        if todo:
            args = [(nets[i].to_dict(with_meta=False), self.settings) for i in todo.values()]
            results = self.executor.map(evaluate_candidate, args)
            new = []
            for (k, i), res in zip(todo.items(), results):
                rec = {"key": k, "x": [int(v) for v in X[i]], "attempts": res.attempts}
                if res.ok:
                    rec.update(res.value)
                else:
                    rec.update(failed=True, error_message=res.error, error=None)
                self.cache.put(k, rec)
                new.append(rec)
            self.evaluated += len(new)
            _stop_if_all_failed(self.cache.records.values(), new)
            if self.on_results is not None:
                self.on_results(new)
        return [self.cache.get(k) for k in keys]

    def _evaluate(self, X, out, *args, **kwargs):
        recs = self.evaluate_networks(np.asarray(X, dtype=np.int64))
        out["F"] = np.array([objective_vector(r, self.objectives) for r in recs], dtype=float)
        out["G"] = np.array([constraint_vector(r, self.settings) for r in recs], dtype=float)


__all__ = ["OBJECTIVES", "evaluate_candidate", "EvalCache", "NetworkProblem", "objective_vector", "constraint_vector"]
