"""Discrete strategies on the shipped DARTS-space records (NAS-Bench-301, 300 archs), and the
strategies' own overhead per query on a table.

For every discrete strategy (random, regularized evolution, local search, BOHB, BOHB+GCN) and
``--seeds`` seeds: the best validation accuracy found after 40 and 100 queries on
``tabular:nb301_cifar10`` (mean, standard error, and how many seeds beat random search's mean),
and the strategy overhead per query: the run's wall time minus the time spent inside the
table's ``evaluate``, divided by the queries (so it is ask + tell + the run loop's bookkeeping;
CPU time of this process, ``time.process_time``, so a loaded machine inflates it less
than wall time; the load average is recorded). Writes ``bench/results/strategies_darts.json``.

    python bench/strategies_darts.py --seeds 20 --budget 100
    python bench/strategies_darts.py --table nb201_cifar10 --space nb201 --out strategies_overhead_nb201.json
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from dnas.evaluators import make_evaluator
from dnas.io import write_json
from dnas.strategies.discrete import run_discrete_search

OUT = Path(__file__).resolve().parent / "results"
STRATEGIES = {
    "random": ("random", {}),
    "evolution": ("evolution", {}),
    "evolution (nearest fallback)": ("evolution", {"fallback": "nearest"}),
    "local-search": ("local-search", {}),
    "bohb": ("bohb", {}),
    "bohb-gcn": ("bohb-gcn", {}),
}


class Timed:
    """The table, with the seconds spent inside ``evaluate`` counted."""

    def __init__(self, table):
        self.table, self.seconds = table, 0.0
        self.space = table.space

    def archs(self):
        return self.table.archs()

    def lookup(self, arch):
        return self.table.lookup(arch)

    def evaluate(self, arch, budget=None):
        t = time.process_time()
        try:
            return self.table.evaluate(arch, budget)
        finally:
            self.seconds += time.process_time() - t


def run(space: str, table: str, strategy: str, options: dict, seeds: int, budget: int) -> dict:
    curves, overhead = [], []
    run_discrete_search(space=space, strategy=strategy, evaluator=f"tabular:{table}", budget=5, seed=10_000,
                        **options)  # warm-up: module imports are not per-query overhead
    for s in range(seeds):
        ev = Timed(make_evaluator(f"tabular:{table}"))
        t = time.process_time()
        r = run_discrete_search(space=space, strategy=strategy, evaluator=ev, budget=budget, seed=s, **options)
        overhead.append((time.process_time() - t - ev.seconds) / r["queries"])
        curves.append([h["best_so_far"] for h in r["history"]])
    c = np.array(curves)
    at = {str(q): {"mean": round(float(c[:, q - 1].mean()), 4), "se": round(float(c[:, q - 1].std() / np.sqrt(seeds)), 4)}
          for q in (10, 20, 40, 100) if q <= budget}
    return {"strategy": strategy, "options": options, "seeds": seeds, "best_at": at,
            "final_per_seed": [round(float(x), 4) for x in c[:, -1]],
            "at40_per_seed": [round(float(x), 4) for x in c[:, min(40, budget) - 1]],
            "overhead_ms_per_query": round(1000 * float(np.mean(overhead)), 3),
            "overhead_ms_per_query_max_seed": round(1000 * float(np.max(overhead)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--table", default="nb301_cifar10")
    ap.add_argument("--space", default="darts")
    ap.add_argument("--only", nargs="*", help="strategy labels to run (default: all)")
    ap.add_argument("--out", default="strategies_darts.json")
    args = ap.parse_args()
    table = make_evaluator(f"tabular:{args.table}")
    res = {"benchmark": "strategies_darts", "table": args.table, "space": args.space, "n_records": len(table),
           "table_best": table.best()[1], "budget": args.budget, "seeds": args.seeds,
           "machine": platform.platform(), "load_average_at_start": os.getloadavg(), "strategies": {}}
    for label, (strategy, options) in STRATEGIES.items():
        if args.only and label not in args.only:
            continue
        t = time.process_time()
        r = run(args.space, args.table, strategy, options, args.seeds, args.budget)
        r["cpu_seconds"] = round(time.process_time() - t, 1)
        res["strategies"][label] = r
        print(f"{label:30s} {r['best_at']}  overhead {r['overhead_ms_per_query']} ms/query", flush=True)
    base = res["strategies"].get("random")
    if base:
        for label, r in res["strategies"].items():
            for q in ("40", str(args.budget)):
                r.setdefault("minus_random", {})[q] = round(r["best_at"][q]["mean"] - base["best_at"][q]["mean"], 4)
    OUT.mkdir(parents=True, exist_ok=True)
    write_json(OUT / args.out, res)
    print(f"wrote {OUT / args.out}")


if __name__ == "__main__":
    main()
