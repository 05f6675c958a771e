"""BOHB: Hyperband's brackets with a TPE-style KDE model proposing the configurations.

A faithful re-implementation of Falkner, Klein & Hutter, "BOHB: Robust and Efficient
Hyperparameter Optimization at Scale" (ICML 2018) with HpBandSter's defaults, on ConfigSpace.
HpBandSter itself hangs on this platform and DEHB pins numpy<2, hence our own code.

Schedule (Hyperband, as HpBandSter): budgets are ``max_budget * eta**-k`` for
``k = s_max .. 0`` with ``s_max = floor(log_eta(max_budget / min_budget))``. Iteration ``i``
runs bracket ``s = s_max - (i mod (s_max + 1))`` (the most aggressive bracket first, then
cycling), which starts ``n0 = floor((s_max + 1) / (s + 1)) * eta**s`` configurations at budget
``max_budget * eta**-s``; successive halving keeps the best ``floor(n / eta)`` (at least one) of
each rung for the next budget. For min 1, max 9, eta 3 this is the published table::

    s=2: 9 configs @1 -> 3 @3 -> 1 @9;   s=1: 3 @3 -> 1 @9;   s=0: 3 @9

Model (HpBandSter's ``config_generators/bohb.py``): results are kept per budget; a budget's
model is (re)fit when it has more than ``d`` points (``d`` = number of hyperparameters) and no
larger budget has a model yet. Sorted by loss, the best ``max(d + 1, 15% of n)`` points fit the
good density ``l(x)`` and the next ``max(d + 1, 85% of n)`` the bad density ``g(x)``, each
needing at least ``d + 1`` points; bandwidths by the normal-reference rule, clipped below at
``min_bandwidth`` (1e-3). A new configuration is uniformly random if no model exists or with
probability ``random_fraction`` (1/3); otherwise ``num_samples`` (64) points are drawn from the
good KDE of the largest budget with a model, with continuous bandwidths multiplied by
``bandwidth_factor`` (3), and the one maximising ``l(x) / g(x)`` is returned. Failed trials
count as loss +inf ("bad"), as in HpBandSter. Inactive (conditional) values are imputed from
other points before fitting, as HpBandSter does.

Variable types: floats and integers are continuous on ConfigSpace's [0, 1] vector scale
(Gaussian kernel; sampled from a truncated normal), categoricals use the Aitchison-Aitken kernel,
ordinals the Wang-Ryzin kernel (HpBandSter rejects ordinals; we support them). See
:mod:`dnas.strategies.kde`.

Two additions, both off by default:

* ``pool``: a finite list of allowed configurations (a tabular benchmark only holds some
  architectures). Random proposals are then uniform over the pool's not yet proposed members;
  model proposals draw the ``num_samples`` candidates from the pool with probability
  proportional to the good KDE's sampling density (i.e. the BOHB proposal distribution
  conditioned on landing in the pool) and keep the max of ``l/g``.
* ``ranker`` (BOHB+GCN): at the start of a bracket ``candidate_factor * n0`` configurations
  are proposed as above and a predictor trained on the results so far keeps the ``n0`` it
  ranks best, so the evaluations are spent on the predictor's favourites.

Everything random draws from one ``numpy`` generator seeded by ``seed`` (and ConfigSpace's
sampler, seeded from it), so the same seed and the same results give the same run.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np
from ConfigSpace import Configuration, ConfigurationSpace
from ConfigSpace.hyperparameters import (
    CategoricalHyperparameter,
    Constant,
    OrdinalHyperparameter,
)
from ConfigSpace.util import deactivate_inactive_hyperparameters

from dnas.errors import ConfigError
from dnas.strategies.kde import ProductKDE
from dnas.trials import Executor, SerialExecutor

#: A ranker scores candidate configurations given the observations so far (higher = better).
Ranker = Callable[[list[Configuration], list[tuple[Configuration, float]]], np.ndarray]


# ---------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class Bracket:
    """One Hyperband bracket: ``num_configs[k]`` configurations are run at ``budgets[k]``."""

    s: int
    num_configs: tuple[int, ...]
    budgets: tuple[float, ...]


def _round_budget(b: float) -> float:
    r = round(b)
    return float(r) if math.isclose(b, r, rel_tol=1e-9, abs_tol=1e-12) else float(b)


def budget_ladder(min_budget: float, max_budget: float, eta: float = 3) -> list[float]:
    """The budgets ``max_budget * eta**-k`` from (about) ``min_budget`` up to ``max_budget``."""
    if not (0 < min_budget <= max_budget):
        raise ConfigError("budget: need 0 < min_budget <= max_budget")
    if eta <= 1:
        raise ConfigError("eta: must be > 1 (the reference value is 3)")
    s_max = int(math.floor(math.log(max_budget / min_budget) / math.log(eta) + 1e-9))
    return [_round_budget(max_budget * eta ** (-k)) for k in range(s_max, -1, -1)]


def hyperband_brackets(min_budget: float, max_budget: float, eta: float = 3) -> list[Bracket]:
    """All brackets in the order BOHB runs them (``s = s_max`` first)."""
    budgets = budget_ladder(min_budget, max_budget, eta)
    n_rungs = len(budgets)
    out = []
    for s in range(n_rungs - 1, -1, -1):
        n0 = int(math.floor(n_rungs / (s + 1)) * eta**s)
        nums = tuple(max(int(n0 * eta ** (-k)), 1) for k in range(s + 1))
        out.append(Bracket(s=s, num_configs=nums, budgets=tuple(budgets[-s - 1 :])))
    return out


# ---------------------------------------------------------------------------- encoding
def config_key(config: Configuration | dict) -> str:
    """A stable string identity of a configuration (its active values, sorted)."""
    return json.dumps({k: _plain(v) for k, v in dict(config).items()}, sort_keys=True)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


class VectorCodec:
    """Configurations <-> the numeric vectors the KDEs model (ConfigSpace's vector form)."""

    def __init__(self, space: ConfigurationSpace) -> None:
        self.space = space
        self.hps = list(space.values())
        if not self.hps:
            raise ConfigError("search space: has no hyperparameters")
        types, levels = [], []
        for hp in self.hps:
            if isinstance(hp, CategoricalHyperparameter):
                types.append("u")
                levels.append(len(hp.choices))
            elif isinstance(hp, OrdinalHyperparameter):
                types.append("o")
                levels.append(len(hp.sequence))
            elif isinstance(hp, Constant):
                types.append("u")
                levels.append(1)
            else:  # floats and integers: [0, 1] in ConfigSpace's vector form
                types.append("c")
                levels.append(0)
        self.vartypes = "".join(types)
        self.levels = np.asarray(levels, dtype=int)
        self.dim = len(self.hps)

    def encode(self, config: Configuration) -> np.ndarray:
        return np.asarray(config.get_array(), dtype=float)

    def decode(self, vector: np.ndarray) -> Configuration | None:
        """A valid configuration from a model vector, or ``None`` if it breaks a forbidden rule."""
        values = {}
        for hp, t, n, v in zip(self.hps, self.vartypes, self.levels, vector):
            if t != "c":
                v = float(np.clip(np.rint(v), 0, max(int(n) - 1, 0)))
            values[hp.name] = _plain(hp.to_value(np.float64(v)))
        try:
            return deactivate_inactive_hyperparameters(configuration=values, configuration_space=self.space)
        except Exception:  # forbidden clause or invalid combination: HpBandSter falls back to random
            return None


# ---------------------------------------------------------------------------- jobs and results
@dataclass
class Job:
    """One evaluation BOHB asks for: ``config`` at ``budget`` (rung ``rung`` of bracket ``s``)."""

    config_id: tuple[int, int]
    config: Configuration
    budget: float
    s: int
    rung: int
    model_based: bool = False

    def to_dict(self) -> dict:
        return {
            "config_id": list(self.config_id),
            "config": {k: _plain(v) for k, v in dict(self.config).items()},
            "budget": self.budget,
            "s": self.s,
            "rung": self.rung,
            "model_based": self.model_based,
        }


@dataclass
class BOHBResult:
    """What a run returns: the incumbent (best loss on the largest budget reached) and history."""

    incumbent: dict | None
    incumbent_loss: float
    incumbent_budget: float | None
    history: list[dict] = field(default_factory=list)
    evaluations: int = 0
    cost: float = 0.0
    brackets: int = 0


@dataclass
class _Rung:
    jobs: list[Job]
    losses: dict[int, float] = field(default_factory=dict)  # job index -> loss


@dataclass
class _ActiveBracket:
    iteration: int
    bracket: Bracket
    rung: int
    current: _Rung


# ---------------------------------------------------------------------------- BOHB
class BOHB:
    """BOHB over a ConfigSpace ``space`` minimising a loss; ask/tell or :meth:`run`.

    ``ask()`` returns the current rung's jobs still waiting for a result (a batch that can be
    evaluated in parallel); ``tell(job, loss)`` records one result (``None`` / NaN = failed =
    +inf). When a rung is complete the best ``1/eta`` move to the next budget; when a bracket is
    complete the next ``ask()`` starts the next one.
    """

    def __init__(
        self,
        space: ConfigurationSpace,
        *,
        min_budget: float,
        max_budget: float,
        eta: float = 3,
        top_n_percent: int = 15,
        num_samples: int = 64,
        random_fraction: float = 1 / 3,
        bandwidth_factor: float = 3,
        min_bandwidth: float = 1e-3,
        min_points_in_model: int | None = None,
        seed: int = 0,
        pool: Sequence[Configuration] | None = None,
        ranker: Ranker | None = None,
        candidate_factor: int = 4,
        ranker_min_points: int = 10,
        avoid_duplicates: bool = False,
    ) -> None:
        if not 0 < top_n_percent < 100:
            raise ConfigError("top_n_percent: must be in (0, 100); the reference value is 15")
        if not 0 <= random_fraction <= 1:
            raise ConfigError("random_fraction: must be in [0, 1]; the reference value is 1/3")
        if num_samples < 1:
            raise ConfigError("num_samples: must be >= 1; the reference value is 64")
        self.brackets = hyperband_brackets(min_budget, max_budget, eta)
        self.min_budget, self.max_budget, self.eta = min_budget, max_budget, eta
        self.top_n_percent = top_n_percent
        self.num_samples = num_samples
        self.random_fraction = random_fraction
        self.bandwidth_factor = bandwidth_factor
        self.min_bandwidth = min_bandwidth
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.space = copy.deepcopy(space)
        self.space.seed(int(self.rng.integers(2**31 - 1)))
        self.codec = VectorCodec(self.space)
        d = self.codec.dim
        self.min_points_in_model = max(min_points_in_model or 0, d + 1)
        self.ranker = ranker
        self.candidate_factor = max(1, int(candidate_factor))
        self.ranker_min_points = ranker_min_points
        self.avoid_duplicates = avoid_duplicates

        self.pool = list(pool) if pool is not None else None
        if self.pool is not None:
            if not self.pool:
                raise ConfigError("pool: is empty; give at least one allowed configuration")
            self._pool_vectors = np.stack([self.codec.encode(c) for c in self.pool])
            self._pool_keys = [config_key(c) for c in self.pool]
        self._proposed: set[str] = set()

        self.observations: dict[float, list[tuple[np.ndarray, float]]] = {}
        self.kde_models: dict[float, tuple[ProductKDE, ProductKDE]] = {}
        self.history: list[dict] = []
        self.iteration = 0  # brackets started so far
        self.brackets_done = 0
        self._active: _ActiveBracket | None = None

    # ------------------------------------------------------------------ model
    def _impute(self, data: np.ndarray) -> np.ndarray:
        """Fill inactive (NaN) entries from another point where the value is active, else at random."""
        out = data.copy()
        for i in range(out.shape[0]):
            for j in np.flatnonzero(np.isnan(out[i])):
                valid = np.flatnonzero(np.isfinite(data[:, j]))
                if len(valid):
                    out[i, j] = data[self.rng.choice(valid), j]
                elif self.codec.vartypes[j] == "c":
                    out[i, j] = self.rng.random()
                else:
                    out[i, j] = float(self.rng.integers(max(int(self.codec.levels[j]), 1)))
        return out

    def _observe(self, vector: np.ndarray, budget: float, loss: float) -> None:
        if max(list(self.kde_models) + [-np.inf]) > budget:
            return  # HpBandSter: a larger budget already has a model, this one is never used
        obs = self.observations.setdefault(budget, [])
        obs.append((vector, loss))
        if len(obs) < self.min_points_in_model:
            return
        X = np.stack([v for v, _ in obs])
        losses = np.array([l for _, l in obs])
        n = len(obs)
        n_good = max(self.min_points_in_model, (self.top_n_percent * n) // 100)
        n_bad = max(self.min_points_in_model, ((100 - self.top_n_percent) * n) // 100)
        order = np.argsort(losses, kind="stable")
        good = self._impute(X[order[:n_good]])
        bad = self._impute(X[order[n_good : n_good + n_bad]])
        d = self.codec.dim
        if good.shape[0] <= d or bad.shape[0] <= d:
            return
        kw = dict(min_bandwidth=self.min_bandwidth)
        self.kde_models[budget] = (
            ProductKDE(good, self.codec.vartypes, self.codec.levels, **kw),
            ProductKDE(bad, self.codec.vartypes, self.codec.levels, **kw),
        )

    @property
    def model_budget(self) -> float | None:
        """The budget whose model proposes configurations (the largest with one), if any."""
        return max(self.kde_models) if self.kde_models else None

    # ------------------------------------------------------------------ proposals
    def _random_config(self, exclude: set[str]) -> Configuration:
        if self.pool is not None:
            free = [i for i, k in enumerate(self._pool_keys) if k not in exclude]
            idx = free if free else list(range(len(self.pool)))
            return self.pool[int(self.rng.choice(idx))]
        return self.space.sample_configuration()

    def _acquisition(self, X: np.ndarray) -> np.ndarray:
        """``l(x) / g(x)`` with HpBandSter's floor of 1e-32 on both densities."""
        good, bad = self.kde_models[self.model_budget]
        return np.maximum(good.pdf(X), 1e-32) / np.maximum(bad.pdf(X), 1e-32)

    def _model_config(self, exclude: set[str]) -> Configuration | None:
        good, _ = self.kde_models[self.model_budget]
        if self.pool is not None:
            free = np.array([i for i, k in enumerate(self._pool_keys) if k not in exclude])
            if len(free) == 0:
                return None
            cand = self._impute(self._pool_vectors[free])
            w = good.sampling_pdf(cand, self.bandwidth_factor)
            if not np.isfinite(w).all() or w.sum() <= 0:
                return None
            picks = self.rng.choice(len(free), size=self.num_samples, p=w / w.sum())
            acq = self._acquisition(cand[picks])
            return self.pool[int(free[picks[int(np.argmax(acq))]])]
        samples = good.sample(self.rng, self.num_samples, self.bandwidth_factor)
        acq = self._acquisition(samples)
        return self.codec.decode(samples[int(np.argmax(acq))])

    def propose(self, exclude: set[str] | None = None) -> tuple[Configuration, bool]:
        """One new configuration and whether the model chose it (else it is random).

        With ``avoid_duplicates`` (discrete spaces without a pool) a configuration proposed
        before is redrawn, up to 20 times; HpBandSter does not do this, but on a discrete space a
        repeat is a wasted evaluation. In pool mode repeats are excluded by construction.
        """
        exclude = self._proposed if exclude is None else exclude
        tries = 20 if (self.avoid_duplicates and self.pool is None) else 1
        for _ in range(tries):
            cfg, model_based = self._propose_once(exclude)
            if config_key(cfg) not in exclude:
                break
        return cfg, model_based

    def _propose_once(self, exclude: set[str]) -> tuple[Configuration, bool]:
        if self.kde_models and self.rng.random() >= self.random_fraction:
            cfg = self._model_config(exclude)
            if cfg is not None:
                return cfg, True
        return self._random_config(exclude), False

    def _new_configs(self, n: int) -> list[tuple[Configuration, bool]]:
        use_ranker = self.ranker is not None and len(self.history) >= self.ranker_min_points
        m = n * self.candidate_factor if use_ranker else n
        exclude = set(self._proposed)
        cands = []
        for _ in range(m):
            cfg, mb = self.propose(exclude)
            exclude.add(config_key(cfg))
            cands.append((cfg, mb))
        if use_ranker and m > n:
            observed = [(Configuration(self.space, values=h["config"]), h["loss"]) for h in self.history]
            scores = np.asarray(self.ranker([c for c, _ in cands], observed), dtype=float)
            order = np.argsort(-scores, kind="stable")[:n]
            cands = [cands[i] for i in sorted(order)]
        for cfg, _ in cands:
            self._proposed.add(config_key(cfg))
        return cands

    # ------------------------------------------------------------------ ask / tell
    def _start_bracket(self) -> None:
        bracket = self.brackets[self.iteration % len(self.brackets)]
        configs = self._new_configs(bracket.num_configs[0])
        jobs = [
            Job((self.iteration, i), cfg, bracket.budgets[0], bracket.s, 0, mb)
            for i, (cfg, mb) in enumerate(configs)
        ]
        self._active = _ActiveBracket(self.iteration, bracket, 0, _Rung(jobs))
        self.iteration += 1

    def ask(self) -> list[Job]:
        """The jobs of the current rung that have no result yet (starting a bracket if needed)."""
        if self._active is None:
            self._start_bracket()
        rung = self._active.current
        return [j for i, j in enumerate(rung.jobs) if i not in rung.losses]

    def tell(self, job: Job, loss: float | None, **extra: Any) -> None:
        """Record the loss of ``job`` (``None`` or non-finite: a failed trial, counted as +inf)."""
        act = self._active
        if act is None or job.config_id[0] != act.iteration or job.rung != act.rung:
            raise ConfigError(f"bohb: result for job {job.config_id} at rung {job.rung} is not expected now")
        idx = next(i for i, j in enumerate(act.current.jobs) if j.config_id == job.config_id)
        loss_f = float(loss) if loss is not None and np.isfinite(loss) else float("inf")
        act.current.losses[idx] = loss_f
        self._observe(self.codec.encode(job.config), job.budget, loss_f)
        self.history.append({**job.to_dict(), "loss": loss_f, **extra})
        if len(act.current.losses) == len(act.current.jobs):
            self._advance()

    def _advance(self) -> None:
        act = self._active
        assert act is not None
        if act.rung + 1 >= len(act.bracket.budgets):
            self._active = None
            self.brackets_done += 1
            return
        keep = act.bracket.num_configs[act.rung + 1]
        losses = [act.current.losses[i] for i in range(len(act.current.jobs))]
        order = np.argsort(losses, kind="stable")[:keep]
        act.rung += 1
        budget = act.bracket.budgets[act.rung]
        jobs = [
            Job(act.current.jobs[i].config_id, act.current.jobs[i].config, budget, act.bracket.s, act.rung,
                act.current.jobs[i].model_based)
            for i in sorted(order)
        ]
        act.current = _Rung(jobs)

    # ------------------------------------------------------------------ results
    def incumbent(self) -> tuple[dict | None, float, float | None]:
        """Best (config, loss, budget) on the largest budget with a finite result."""
        done = [h for h in self.history if np.isfinite(h["loss"])]
        if not done:
            return None, float("inf"), None
        top = max(h["budget"] for h in done)
        best = min((h for h in done if h["budget"] == top), key=lambda h: h["loss"])
        return best["config"], best["loss"], top

    def result(self) -> BOHBResult:
        cfg, loss, budget = self.incumbent()
        return BOHBResult(
            incumbent=cfg,
            incumbent_loss=loss,
            incumbent_budget=budget,
            history=list(self.history),
            evaluations=len(self.history),
            cost=float(sum(h["budget"] for h in self.history)),
            brackets=self.brackets_done,
        )

    # ------------------------------------------------------------------ run loop
    def run(
        self,
        evaluate: Callable[[Configuration, float], float],
        *,
        executor: Executor | None = None,
        max_evaluations: int | None = None,
        max_cost: float | None = None,
        max_brackets: int | None = None,
        on_result: Callable[[Job, float, Any], None] | None = None,
    ) -> BOHBResult:
        """Ask, evaluate each rung's batch through ``executor``, tell, until a limit is hit.

        ``evaluate(config, budget)`` returns the loss to minimise, or a dict with ``"loss"`` and
        other JSON-ready fields that are kept in the history (e.g. accuracy, cost). Limits count from this call:
        ``max_evaluations`` results, ``max_cost`` summed budgets (a rung is cut to what fits),
        ``max_brackets`` completed brackets. A later ``run`` continues where this one stopped.
        """
        if max_evaluations is None and max_cost is None and max_brackets is None:
            raise ConfigError("bohb.run: give max_evaluations, max_cost or max_brackets")
        executor = executor or SerialExecutor()
        n_eval, cost, brackets0 = 0, 0.0, self.brackets_done
        while True:
            if max_brackets is not None and self.brackets_done - brackets0 >= max_brackets:
                break
            jobs = self.ask()
            if max_evaluations is not None:
                jobs = jobs[: max(0, max_evaluations - n_eval)]
            if max_cost is not None:
                fit, total = [], cost
                for j in jobs:
                    if total + j.budget > max_cost + 1e-9:
                        break
                    fit.append(j)
                    total += j.budget
                jobs = fit
            if not jobs:
                break
            results = executor.map(evaluate, [(j.config, j.budget) for j in jobs])
            for job, res in zip(jobs, results):
                loss, extra = _split_value(res.value) if res.ok else (None, {"error": res.error})
                self.tell(job, loss, attempts=res.attempts, **extra)
                n_eval += 1
                cost += job.budget
                if on_result is not None:
                    on_result(job, self.history[-1]["loss"], res)
        return self.result()


# ---------------------------------------------------------------------------- discrete strategies
# Registered in dnas.strategies.base.STRATEGIES so that run_discrete_search(strategy="bohb") works.
from dnas.evaluators.base import EvalResult, Evaluator  # noqa: E402
from dnas.spaces.base import SearchSpace  # noqa: E402
from dnas.strategies.base import STRATEGIES, DiscreteStrategy, Proposal, Report  # noqa: E402


def discrete_configspace(space: SearchSpace) -> ConfigurationSpace:
    """One categorical hyperparameter ``d<i>`` per decision of ``space`` (choices = indices)."""
    cs = ConfigurationSpace()
    width = len(str(len(space.cardinalities) - 1))
    cs.add([CategoricalHyperparameter(f"d{i:0{width}d}", list(range(int(c))))
            for i, c in enumerate(space.cardinalities)])
    return cs


@STRATEGIES.register("bohb")
class BOHBStrategy(DiscreteStrategy):
    """BOHB as a discrete strategy: each architecture is a ConfigSpace config of categorical
    decisions (NB201: the 6 edges' ops), so the KDEs are products of Aitchison-Aitken kernels.

    Budgets. By default (``min_budget = max_budget = None``) the evaluator is taken to have one
    fidelity, as tabular records do: BOHB then runs with a single budget, so ``s_max = 0``, every
    bracket is one configuration at full fidelity and BOHB reduces to its model (KDE, 1/3
    random) proposing one architecture per query. We chose this because a records table cannot
    answer a lower fidelity: successive halving would re-query the same number, either wasting
    queries or (if repeats were free) fitting the largest-budget KDE on a biased handful of
    promoted architectures. Evaluators with a real fidelity (epochs) pass ``min_budget`` /
    ``max_budget`` (e.g. 1 / 9) and get the full Hyperband schedule; each rung is then evaluated
    as one batch, through Ray when ``executor="ray"`` (``ray_address`` for a cluster).

    On a tabular evaluator the proposals come from its architectures (BOHB's ``pool`` mode) and
    an architecture is never proposed twice, so queries equal distinct architectures.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int,
        candidates: Sequence[Hashable] | None = None,
        min_budget: float | None = None,
        max_budget: float | None = None,
        eta: float = 3,
        top_n_percent: int = 15,
        num_samples: int = 64,
        random_fraction: float = 1 / 3,
        bandwidth_factor: float = 3,
        min_bandwidth: float = 1e-3,
        executor: str = "serial",
        ray_address: str | None = None,
        workers: int | None = None,
        max_retries: int = 2,
    ) -> None:
        super().__init__(space, seed=seed, candidates=candidates)
        if (min_budget is None) != (max_budget is None):
            raise ConfigError("bohb: give both min_budget and max_budget, or neither (single fidelity)")
        self.single_fidelity = min_budget is None
        lo, hi = (1.0, 1.0) if self.single_fidelity else (float(min_budget), float(max_budget))
        self.configspace = discrete_configspace(space)
        self._names = list(self.configspace.keys())
        pool = [self._config(a) for a in self.candidates] if self.candidates is not None else None
        self.bohb = BOHB(
            self.configspace, min_budget=lo, max_budget=hi, eta=eta, top_n_percent=top_n_percent,
            num_samples=num_samples, random_fraction=random_fraction, bandwidth_factor=bandwidth_factor,
            min_bandwidth=min_bandwidth, seed=seed, pool=pool, ranker=self._ranker(),
            avoid_duplicates=True, **self._bohb_extra(),
        )
        from dnas.trials import make_executor

        self.executor_kind = executor
        self._executor_args = dict(kind=executor, address=ray_address, num_cpus=workers, max_retries=max_retries)
        self._make_executor = make_executor
        self._handed: dict[tuple[int, int], Job] = {}
        self.failed: list[dict] = []

    # hooks for BOHB+GCN
    def _ranker(self) -> Ranker | None:
        return None

    def _bohb_extra(self) -> dict:
        return {}

    # ------------------------------------------------------------------ encoding
    def _config(self, arch: Hashable) -> Configuration:
        return Configuration(self.configspace, values=dict(zip(self._names, (int(v) for v in self.space.encode(arch)))))

    def _arch(self, config: Configuration | Mapping[str, Any]) -> Hashable:
        return self.space.decode([int(config[n]) for n in self._names])

    def _proposal(self, job: Job) -> Proposal:
        return Proposal(self._arch(job.config), budget=None if self.single_fidelity else job.budget)

    # ------------------------------------------------------------------ ask / tell
    def ask_batch(self) -> list[Proposal]:
        """All proposals of the current rung not handed out yet (they can run in parallel)."""
        jobs = [j for j in self.bohb.ask() if j.config_id not in self._handed]
        for j in jobs:
            self._handed[j.config_id] = j
        return [self._proposal(j) for j in jobs]

    def ask(self) -> Proposal:
        jobs = [j for j in self.bohb.ask() if j.config_id not in self._handed]
        if not jobs:
            raise ConfigError("bohb: every job of the current rung is out; tell their results before asking again")
        self._handed[jobs[0].config_id] = jobs[0]
        return self._proposal(jobs[0])

    def _job_for(self, proposal: Proposal) -> Job:
        for cid, job in self._handed.items():
            if self._arch(job.config) == proposal.arch and (self.single_fidelity or job.budget == proposal.budget):
                return self._handed.pop(cid)
        raise ConfigError(f"bohb: result for {proposal.arch} was never asked for")

    def tell(self, proposal: Proposal, result: EvalResult) -> None:
        super().tell(proposal, result)
        self.bohb.tell(self._job_for(proposal), 100.0 - float(result.accuracy))

    def tell_failure(self, proposal: Proposal, error: str) -> None:
        """A trial that failed after its retries: BOHB counts it as loss +inf (kept in :attr:`failed`)."""
        self.bohb.tell(self._job_for(proposal), None, error=error)
        self.failed.append({"arch": self.space.to_str(proposal.arch), "budget": proposal.budget, "error": error})

    def run(self, evaluator: Evaluator, max_queries: int, report: Report) -> None:
        """Evaluate rung by rung (each rung one batch through the executor) until ``max_queries``."""
        executor = self._make_executor(**self._executor_args)
        try:
            done = 0
            while done < max_queries:
                props = self.ask_batch()[: max_queries - done]
                if not props:
                    break
                results = executor.map(evaluator.evaluate, [(p.arch, p.budget) for p in props])
                for p, res in zip(props, results):
                    if res.ok:
                        self.tell(p, res.value)
                        report(p, res.value)
                    else:
                        self.tell_failure(p, res.error or "failed")
                    done += 1
                _stop_if_all_failed(self.failed, done)
        finally:
            executor.close()


def _stop_if_all_failed(failed: list[dict], done: int) -> None:
    """Every trial so far failed for one reason (bad data, a broken evaluator): stop in one line
    instead of burning the whole budget on the same error."""
    errors = {f["error"] for f in failed}
    if done and len(failed) == done and len(errors) == 1:
        from dnas.errors import DnasError

        raise DnasError(f"bohb: all {done} trials failed with the same error: {errors.pop()}; fix its cause and start again")


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run a small torch model on ``n`` threads: the predictor is tiny, and on a busy machine
    intra-op threads oversubscribe the cores (a GCN fit measured 30 s on 2 threads, 0.9 s on 1)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@STRATEGIES.register("bohb-gcn")
class BOHBGCNStrategy(BOHBStrategy):
    """BOHB whose proposals are filtered by a GCN accuracy predictor before they are paid for.

    At the start of every bracket BOHB proposes ``candidate_factor`` times as many architectures
    as it needs (each as usual: a third random, the rest the best ``l/g`` of 64 KDE samples);
    the predictor (:class:`dnas.predictors.gcn.GCNPredictor`), trained on every architecture
    evaluated so far (refit after every ``refit_every`` new results), keeps those it ranks best.
    Until ``min_train`` results exist, plain BOHB runs. NB201 only (the GCN reads NB201 DAGs).
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int,
        candidates: Sequence[Hashable] | None = None,
        predictor: str = "gcn",
        candidate_factor: int = 4,
        min_train: int = 10,
        refit_every: int = 5,
        predictor_epochs: int = 100,
        predictor_ensemble: int = 1,
        **options: Any,
    ) -> None:
        if candidate_factor < 1 or min_train < 2 or refit_every < 1:
            raise ConfigError("bohb-gcn: need candidate_factor >= 1, min_train >= 2 and refit_every >= 1")
        # The predictor reads the space's graph / one-hot encodings, so it works on every space.
        self._pred_opts = dict(name=predictor, seed=seed, epochs=predictor_epochs, ensemble=predictor_ensemble, space=space)
        self.candidate_factor, self.min_train, self.refit_every = candidate_factor, min_train, refit_every
        self._predictor: Any = None
        self._fitted_on = 0
        self.predictor_fits = 0
        super().__init__(space, seed=seed, candidates=candidates, **options)

    def _bohb_extra(self) -> dict:
        return dict(candidate_factor=self.candidate_factor, ranker_min_points=self.min_train)

    def _ranker(self) -> Ranker:
        def rank(cands: list[Configuration], observed: list[tuple[Configuration, float]]) -> np.ndarray:
            best: dict[Hashable, float] = {}
            for cfg, loss in observed:  # one target per architecture: its best (largest-budget) result
                if np.isfinite(loss):
                    a = self._arch(cfg)
                    best[a] = min(best.get(a, np.inf), loss)
            if len(best) < self.min_train:
                return np.zeros(len(cands))
            with _torch_threads(1):
                if self._predictor is None or len(best) - self._fitted_on >= self.refit_every:
                    from dnas.predictors import make_predictor

                    opts = dict(self._pred_opts)
                    self._predictor = make_predictor(opts.pop("name"), **opts)
                    archs = list(best)
                    self._predictor.fit(archs, [100.0 - best[a] for a in archs])
                    self._fitted_on = len(best)
                    self.predictor_fits += 1
                return np.asarray(self._predictor.predict([self._arch(c) for c in cands]), dtype=float)

        return rank


def _split_value(value: Any) -> tuple[float | None, dict]:
    if isinstance(value, Mapping):
        extra = {k: v for k, v in value.items() if k != "loss"}
        return value.get("loss"), extra
    return value, {}


__all__ = [
    "BOHB",
    "BOHBGCNStrategy",
    "BOHBResult",
    "BOHBStrategy",
    "Bracket",
    "Job",
    "Ranker",
    "VectorCodec",
    "budget_ladder",
    "config_key",
    "discrete_configspace",
    "hyperband_brackets",
]
