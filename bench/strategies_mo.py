"""Multi-objective search on the shipped tables: NSGA-II vs random search, hypervolume at a
query budget.

Both strategies run with ``objectives=error,params`` (``--objectives``) for ``--seeds`` seeds;
the hypervolume is dnas's one definition (:mod:`dnas.strategies.objectives`): objectives
normalised between the table's best and worst value of each, reference point (1, 1). Writes
``bench/results/strategies_mo.json``.

    python bench/strategies_mo.py --seeds 20 --budget 100
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from dnas.io import write_json
from dnas.strategies.discrete import run_discrete_search

OUT = Path(__file__).resolve().parent / "results"
TABLES = {"nb201": "tabular:nb201_cifar10", "darts": "tabular:nb301_cifar10"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--objectives", default="error,params")
    args = ap.parse_args()
    res = {"benchmark": "strategies_mo", "objectives": args.objectives, "budget": args.budget, "seeds": args.seeds,
           "machine": platform.platform(), "tables": {}}
    for space, table in TABLES.items():
        rows = {}
        for strategy in ("random", "nsga2"):
            hv = [run_discrete_search(space=space, strategy=strategy, evaluator=table, budget=args.budget, seed=s,
                                      objectives=args.objectives)["hypervolume"] for s in range(args.seeds)]
            rows[strategy] = {"mean_hypervolume": round(float(np.mean(hv)), 5),
                              "se": round(float(np.std(hv) / np.sqrt(len(hv))), 5),
                              "per_seed": [round(h, 5) for h in hv]}
            print(f"{space:6s} {strategy:8s} {rows[strategy]['mean_hypervolume']} ± {rows[strategy]['se']}", flush=True)
        a, b = np.array(rows["nsga2"]["per_seed"]), np.array(rows["random"]["per_seed"])
        rows["nsga2_minus_random"] = round(float(a.mean() - b.mean()), 5)
        rows["seeds_nsga2_higher"] = int((a > b).sum())  # same seed index, paired only by number
        res["tables"][space] = {"table": table, **rows}
    OUT.mkdir(parents=True, exist_ok=True)
    write_json(OUT / "strategies_mo.json", res)
    print(f"wrote {OUT / 'strategies_mo.json'}")


if __name__ == "__main__":
    main()
