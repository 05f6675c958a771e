"""Discrete search strategies on the shipped NAS-Bench-201 records: best accuracy found vs queries.

Runs every strategy registered in ``dnas.strategies.base.STRATEGIES`` (random, regularized
evolution and, when present, BOHB / BOHB+GCN) plus evolution with the nearest-neighbour
fallback, each over ``--seeds`` seeds with ``--budget`` queries on ``tabular:nb201_cifar10``,
and writes the mean (and std) best-found accuracy after every query to
``bench/results/strategies_nb201.json`` and a plot next to it.

    python bench/strategies_nb201.py --seeds 10 --budget 100

Also BANANAS / NPENAS (plain, with a synflow warm start and proxy features, NPENAS-BO) and
training-free searches on the ``zc:`` evaluator, whose curve is the *real* accuracy of the
best-by-proxy arch so far. ``--only LABEL ...`` and ``--out FILE`` run a subset elsewhere:

    python bench/strategies_nb201.py --seeds 20 --only random bananas npenas ... --out bench/results/strategies_guided.json

Reference (TARGETS.md): random search after 40 queries averages 90.57; the best record is 91.36.
"""
from __future__ import annotations

import argparse
import platform
import time
import traceback
from pathlib import Path

import numpy as np

from dnas.evaluators import make_evaluator
from dnas.io import write_json
from dnas.strategies.discrete import load_strategies, run_discrete_search

TABLE = "tabular:nb201_cifar10"
OUT = Path(__file__).resolve().parent / "results"


def truth_curve(history: list[dict]) -> list[float]:
    """For a search scored by a proxy (``zc:``): the real accuracy of the best-by-proxy arch so far."""
    out, best, acc = [], float("-inf"), float("nan")
    for h in history:
        if h["accuracy"] > best:
            best, acc = h["accuracy"], h["cost"]["val_accuracy"]
        out.append(acc)
    return out


def run_one(label: str, strategy: str, seeds: list[int], budget: int, options: dict) -> dict:
    curves, t0 = [], time.perf_counter()
    options = dict(options)
    evaluator = options.pop("evaluator", TABLE)
    try:
        for s in seeds:
            res = run_discrete_search(space="nb201", strategy=strategy, evaluator=evaluator, budget=budget, seed=s, **options)
            bsf = truth_curve(res["history"]) if evaluator.startswith("zc:") else [h["best_so_far"] for h in res["history"]]
            curves.append(bsf + [bsf[-1]] * (budget - len(bsf)))  # a strategy that stops early keeps its best
    except Exception as e:  # report a broken strategy instead of losing the whole benchmark
        return {"strategy": strategy, "options": options, "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=3)}
    c = np.array(curves)
    mean = c.mean(0)
    return {
        "strategy": strategy,
        "options": options,
        "evaluator": evaluator,
        "seeds": len(seeds),
        "mean_best_by_query": [round(float(x), 4) for x in mean],
        "std_best_by_query": [round(float(x), 4) for x in c.std(0)],
        "mean_best_at": {str(q): round(float(mean[q - 1]), 3) for q in (10, 20, 40, 60, 100, budget) if q <= budget},
        "found_table_best": int((c[:, -1] >= TABLE_BEST - 1e-9).sum()),
        "seed_list": list(seeds),
        "best_at_40_100_per_seed": [[round(float(row[min(39, budget - 1)]), 3), round(float(row[-1]), 3)] for row in c],
        "seconds": round(time.perf_counter() - t0, 2),
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, r in results["strategies"].items():
        if "mean_best_by_query" not in r:
            continue
        m, s = np.array(r["mean_best_by_query"]), np.array(r["std_best_by_query"])
        q = np.arange(1, len(m) + 1)
        ax.plot(q, m, label=label)
        ax.fill_between(q, m - s / np.sqrt(r["seeds"]), m + s / np.sqrt(r["seeds"]), alpha=0.2)
    ax.axhline(results["table_best"], color="k", ls="--", lw=0.8, label=f"best record {results['table_best']}")
    ax.set_xlabel("queries")
    ax.set_ylabel("best validation accuracy found (%)")
    ax.set_ylim(88.5, results["table_best"] + 0.2)
    ax.set_title(f"NB201 CIFAR-10 records ({results['n_records']} archs), mean of {results['n_seeds']} seeds (±SE)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    global TABLE_BEST
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--only", nargs="*", help="strategy labels to run (default: all)")
    ap.add_argument("--seed-start", type=int, default=0, help="first seed (split a long run over processes)")
    ap.add_argument("--out", type=Path, default=None, help="result file (default bench/results/strategies_nb201.json)")
    args = ap.parse_args()
    ev = make_evaluator(TABLE)
    TABLE_BEST = ev.best()[1]
    runs = {name: (name, {}) for name in load_strategies()}
    runs["evolution (nearest fallback)"] = ("evolution", {"fallback": "nearest"})
    # zero-cost proxies: warm starts, proxy features, and training-free search by a proxy
    warm = "zc:synflow,table=nb201_cifar10_zc"
    runs["bananas (synflow warm start)"] = ("bananas", {"warm_start": warm})
    runs["bananas (warm start + graph+zc)"] = ("bananas", {"warm_start": warm, "features": "graph+zc"})
    runs["npenas-bo"] = ("npenas", {"acquisition": "its", "ensemble": 3})
    runs["evolution on zc:synflow (training-free)"] = ("evolution", {"evaluator": warm})
    runs["random on zc:nwot (training-free)"] = ("random", {"evaluator": "zc:nwot,table=nb201_cifar10_zc"})
    if args.only:
        runs = {k: v for k, v in runs.items() if k in args.only}
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    results = {
        "benchmark": "strategies_nb201",
        "table": TABLE,
        "n_records": len(ev),
        "table_best": TABLE_BEST,
        "n_seeds": args.seeds,
        "budget": args.budget,
        "machine": platform.platform(),
        "reference": {"random_at_40": 90.57, "table_best": 91.36},
        "strategies": {},
    }
    for label, (strategy, options) in runs.items():
        r = run_one(label, strategy, seeds, args.budget, options)
        results["strategies"][label] = r
        msg = r.get("error") or f"{r['mean_best_at']}  ({r['seconds']} s)"
        print(f"{label:30s} {msg}", flush=True)
    out = args.out or OUT / "strategies_nb201.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, results)
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and .png")


TABLE_BEST = 91.36

if __name__ == "__main__":
    main()
