"""One shrinkage experiment end to end: shrink, measure, and rank with one-shot supernets.

This is what ``dnas shrink`` and ``bench/shrink_nb201.py`` call. ``truth`` (default: the
evaluator itself, when it holds a finite set of archs such as a table) supplies the true
accuracies the metrics are computed against; lookups for metrics do not count as queries.

The one-shot part trains two supernets with the same budget, seed and data: one sampling only
the shrunk space's members, one sampling the full NB201 space, and scores the shrunk members
and (up to ``oneshot_full_archs``, a seeded subset, for time) the full space's archs.
"""
from __future__ import annotations

import random
import time
from typing import Any, Hashable

from dnas.errors import ConfigError
from dnas.evaluators.base import Evaluator, finite_archs, make_evaluator
from dnas.shrink.metrics import ranking_taus, space_metrics
from dnas.shrink.pockets import ShrinkConfig, shrink
from dnas.shrink.space import ShrunkSpace


def true_accuracies(evaluator: Evaluator) -> dict[Hashable, float]:
    """``arch -> accuracy`` for every arch a finite evaluator holds (a table's ``lookup`` when it
    has one, so no query is counted)."""
    archs = finite_archs(evaluator)
    if archs is None:
        raise ConfigError("truth: the metrics need an evaluator holding a finite set of archs (a table); "
                          "pass --truth tabular:FILE")
    lookup = getattr(evaluator, "lookup", None)
    if callable(lookup):
        return {a: float(lookup(a)["val_accuracy"]) for a in archs}
    return {a: float(evaluator.evaluate(a).accuracy) for a in archs}


def run_shrink(
    evaluator: "str | Evaluator",
    *,
    space: str = "nb201",
    seed: int = 0,
    config: ShrinkConfig | None = None,
    truth: "str | Evaluator | None" = None,
    oneshot: bool = True,
    oneshot_steps: int = 200,
    oneshot_data: str = "digits",
    oneshot_full_archs: int | None = 200,
    oneshot_mode: str = "members",
) -> tuple[ShrunkSpace, dict]:
    """Shrink, then measure. Returns the :class:`ShrunkSpace` and the metrics dict (the keys of
    :func:`~dnas.shrink.metrics.space_metrics`, ``queries``, and with ``oneshot`` the taus of
    :func:`~dnas.shrink.metrics.ranking_taus` plus timings). ``oneshot_mode`` is ``members``
    (sample only pocket members) or ``mask`` (per-edge candidate mask)."""
    if oneshot_mode not in ("members", "mask"):
        raise ConfigError(f"oneshot mode: expected 'members' or 'mask', got {oneshot_mode!r}")
    t0 = time.perf_counter()
    ev = make_evaluator(evaluator)
    shrunk = shrink(ev, space=space, seed=seed, config=config)
    t_shrink = time.perf_counter() - t0
    tv = ev if truth is None else make_evaluator(truth)
    true = true_accuracies(tv)
    out: dict[str, Any] = space_metrics(shrunk, true)
    out.update(
        queries=shrunk.info["queries"],
        full_queries_fraction=round(shrunk.info["queries"] / max(1, len(true)), 4),
        rounds=shrunk.info["rounds"],
        estimate=shrunk.info["estimate"],
        seed=seed,
        shrink_seconds=round(t_shrink, 3),
    )
    out.update(tau_shrunk=None, tau_full=None, tau_full_on_shrunk=None)  # stable keys; filled by the one-shot part
    if oneshot:
        from dnas.shrink.oneshot import ONESHOT_SPACE, oneshot_ranking
    if oneshot and space != ONESHOT_SPACE:
        out["oneshot_skipped"] = f"the one-shot ranking supernet here is {ONESHOT_SPACE}'s; none for space {space!r}"
    elif oneshot:

        members = [a for a in shrunk.archs() if a in true]
        full = list(true)
        if oneshot_full_archs is not None and len(full) > oneshot_full_archs:
            full = random.Random(seed).sample(full, oneshot_full_archs)
        cache: dict = {}
        kw = dict(steps=oneshot_steps, seed=seed, data=oneshot_data, _data_cache=cache)
        restrict = {"allowed": shrunk.archs()} if oneshot_mode == "members" else {"edge_mask": shrunk.edge_mask()}
        small = oneshot_ranking(members, **restrict, **kw)
        big = oneshot_ranking(full, **kw)
        out.update(ranking_taus(members, small["accuracy"], full, big["accuracy"], true))
        out.update(
            oneshot_steps=oneshot_steps,
            oneshot_data=oneshot_data,
            oneshot_mode=oneshot_mode,
            oneshot_full_archs=len(full),
            oneshot_train_loss_last_shrunk=small["train_loss_last"],
            oneshot_train_loss_last_full=big["train_loss_last"],
            oneshot_seconds=round(small["seconds"] + big["seconds"], 3),
        )
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return shrunk, out
