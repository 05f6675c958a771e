"""The ``zc:`` evaluator: score architectures by a zero-cost proxy, so any discrete strategy
runs a training-free search (Abdelfattah et al. 2021; Mellor et al. 2021).

Spec: ``zc:PROXY[+PROXY...][,key=value...]``; the first proxy is the score a strategy
maximises, the others are available as features (:meth:`ZeroCostEvaluator.scores`). Keys:

* ``table=RECORDS`` - restrict the search to a records file / built-in table (``nb201_cifar10``,
  ``nb201_cifar10_zc``, ...); each result's ``cost["val_accuracy"]`` then carries the record's
  real accuracy, so a training-free search can be judged by what it found;
* ``source=records|dnas`` - read the score from the table's proxy fields (NAS-Bench-Suite-Zero's
  published scores) or compute it with :class:`~dnas.predictors.zerocost.ProxyScorer`
  (default: ``records`` when the table carries every proxy, else ``dnas``);
* ``data``, ``input_shape`` (``3x32x32``), ``num_classes``, ``batch_size``, ``seed`` - as
  ``dnas proxy``; any other integer key (``C``, ``N``, ``layers``) is an evaluation-network
  option. Without ``data`` only data-independent proxies (synflow, zen, ...) can be computed.

Without a table the evaluator learns its space from the search (``bind_space``). A record
without a published score, or a score that failed numerically, counts as ``-inf`` (worst).
"""
from __future__ import annotations

import math
import time
from typing import Any, Hashable, Sequence

from dnas.errors import ConfigError
from dnas.evaluators.base import EVALUATORS, EvalResult


class ZeroCostEvaluator:
    """Proxy scores as the objective (``accuracy`` holds the first proxy's score)."""

    def __init__(self, proxies: "str | Sequence[str]", *, space: Any = None, table: Any = None, source: str | None = None,
                 data: str | None = None, input_shape: Any = None, num_classes: int | None = None, batch_size: int = 64,
                 seed: int = 0, net_opts: dict | None = None) -> None:
        from dnas.predictors.zerocost import parse_proxies

        self.proxies = parse_proxies(proxies)
        self.proxy = self.proxies[0]
        self.queries = 0
        self._records: dict[Hashable, dict] = {}
        self._archs: list[Hashable] | None = None
        self.space = space if space is None or isinstance(space, str) else space.name
        if table is not None:
            from dnas.evaluators.tabular import TabularEvaluator

            tab = TabularEvaluator(table)
            self._records = {r["key"]: r for r in tab.records}
            self._archs = tab.archs()
            if self.space is not None and self.space != tab.space:
                raise ConfigError(f"zc evaluator: table {table} holds {tab.space} architectures, not {self.space}")
            self.space = tab.space
        carried = bool(self._records) and all(any(p in r["fields"] for r in self._records.values()) for p in self.proxies)
        if source not in (None, "records", "dnas"):
            raise ConfigError(f"zc evaluator: source must be records or dnas, got {source!r}")
        if source == "records" and not carried:
            raise ConfigError(f"zc evaluator: source=records needs a table carrying {', '.join(self.proxies)} (e.g. table=nb201_cifar10_zc)")
        self.source = source or ("records" if carried else "dnas")
        self._scorer_args = dict(data=data, input_shape=input_shape, num_classes=num_classes, batch_size=batch_size,
                                 seed=seed, net_opts=net_opts or {})
        self._scorer = None
        if self.source == "dnas" and self.space is not None:
            self.bind_space(self.space)

    def bind_space(self, space: Any) -> None:
        """Score architectures of ``space`` (called by the search loop when no table fixed it)."""
        from dnas.predictors.zerocost import ProxyScorer

        name = space if isinstance(space, str) else space.name
        if self.space is not None and self.space != name:
            raise ConfigError(f"space: the zc evaluator scores {self.space} architectures, not {name}")
        self.space = name
        if self.source == "dnas" and self._scorer is None:
            self._scorer = ProxyScorer(space, self.proxies, **self._scorer_args)

    def archs(self) -> "Sequence[Hashable] | None":
        """The table's architectures, or ``None`` (any architecture of the space) without one."""
        return None if self._archs is None else list(self._archs)

    def scores(self, arch: Any) -> dict[str, float]:
        """Every listed proxy's score of ``arch`` (no query counted): features for predictors."""
        key = self._key(arch)
        if self.source == "records":
            f = self._records[key]["fields"]
            return {p: float(f[p]) if p in f else math.nan for p in self.proxies}
        if self._scorer is None:
            raise ConfigError("zc evaluator: no space to build networks in; pass space=... or search with --space")
        return self._scorer.score(key)

    def _key(self, arch: Any) -> Hashable:
        if not self._records:
            return arch
        from dnas.evaluators.tabular import arch_key

        key = arch_key(arch)
        if key not in self._records:
            raise ConfigError(f"zc evaluator: architecture {key} is not in its table; restrict the search to archs()")
        return key

    def evaluate(self, arch: Any, budget: float | None = None) -> EvalResult:
        t0 = time.perf_counter()
        s = self.scores(arch).get(self.proxy, math.nan)
        self.queries += 1
        cost = {"seconds": time.perf_counter() - t0}
        rec = self._records.get(self._key(arch)) if self._records else None
        if rec is not None:
            cost["val_accuracy"] = rec["val_accuracy"]
        return EvalResult(accuracy=s if math.isfinite(s) else -math.inf, cost=cost, budget=budget)


def parse_zc_spec(arg: str) -> dict:
    """``"synflow+nwot,table=nb201_cifar10,C=8"`` -> ZeroCostEvaluator keyword arguments."""
    head, *pairs = [p.strip() for p in arg.split(",")]
    if not head:
        raise ConfigError("evaluator zc: name a proxy, e.g. 'zc:synflow' or 'zc:synflow,table=nb201_cifar10'")
    kw: dict[str, Any] = {"proxies": head.split("+")}
    net: dict[str, int] = {}
    for p in pairs:
        key, sep, val = p.partition("=")
        if not sep:
            raise ConfigError(f"evaluator zc: expected key=value after the proxy, got {p!r}")
        if key in ("table", "source", "data"):
            kw[key] = val
        elif key == "input_shape":
            kw[key] = val.replace("x", ",")
        elif key in ("num_classes", "batch_size", "seed") or val.lstrip("-").isdigit():
            try:
                v = int(val)
            except ValueError:
                raise ConfigError(f"evaluator zc: {key} must be an integer, got {val!r}") from None
            if key in ("num_classes", "batch_size", "seed"):
                kw[key] = v
            else:
                net[key] = v
        else:
            raise ConfigError(f"evaluator zc: unknown key {key!r}; use table, source, data, input_shape, num_classes, "
                              "batch_size, seed or an integer network option (C, N, layers)")
    kw["net_opts"] = net
    return kw


@EVALUATORS.register("zc")
def _make_zc(arg: str) -> ZeroCostEvaluator:
    return ZeroCostEvaluator(**parse_zc_spec(arg))
