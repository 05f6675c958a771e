"""Search-space shrinkage (LISSNAS-style pockets) on the shipped NAS-Bench-201 records.

For each seed: shrink the 725-record table with the default :class:`ShrinkConfig`, measure the
shrunk space against the table (size, mean/best accuracy inside vs outside, best kept, top-5%
recall, diversity), train one-shot supernets on digits (one on the pocket members, one on the
full NB201 space, one on the pockets' per-edge mask) and compare their Kendall tau with the
table, and run random search / regularized evolution with a small budget inside the shrunk
space vs random search on the full table. Two baselines show where the gain comes from:
``random_pockets`` (the same number of balls of the same radius around *random* table archs)
and the full table itself. Writes ``bench/results/shrink_nb201.json``.

    python bench/shrink_nb201.py --seeds 10 --oneshot-steps 300

Note on the one-shot taus: the supernets train on digits (8x8 images, built in, no download)
while the "true" ranking is CIFAR-10 accuracy from the table, so the taus measure how much of
the CIFAR-10 ranking a digits-trained supernet recovers; expect them to be small.
"""
from __future__ import annotations

import argparse
import platform
from dataclasses import asdict
import random
import time
from pathlib import Path

import numpy as np

from dnas.evaluators import make_evaluator
from dnas.io import write_json
from dnas.shrink import Pocket, ShrinkConfig, ShrunkSpace, locality_report, run_shrink, search_shrunk, space_metrics
from dnas.shrink.metrics import ranking_taus
from dnas.shrink.oneshot import oneshot_ranking
from dnas.shrink.pockets import FiniteUniverse
from dnas.shrink.run import true_accuracies
from dnas.strategies.discrete import run_discrete_search

TABLE = "tabular:nb201_cifar10"
OUT = Path(__file__).resolve().parent / "results"


def random_pockets(truth: dict, n: int, radius: int, seed: int) -> ShrunkSpace:
    U = FiniteUniverse(list(truth))
    centers = random.Random(1000 + seed).sample(U.archs, n)
    return ShrunkSpace("nb201", [Pocket(c, radius, tuple(U.ball(c, radius))) for c in centers], U.size)


def one_seed(seed: int, args, truth: dict) -> dict:
    cfg = ShrinkConfig()
    shrunk, m = run_shrink(TABLE, seed=seed, config=cfg, oneshot=not args.no_oneshot, oneshot_steps=args.oneshot_steps,
                           oneshot_full_archs=args.oneshot_full_archs or None)
    row = dict(m)
    if not args.no_oneshot:  # the per-edge-mask variant of the shrunk supernet
        members = [a for a in shrunk.archs() if a in truth]
        r = oneshot_ranking(members, edge_mask=shrunk.edge_mask(), steps=args.oneshot_steps, seed=seed)
        row["tau_shrunk_mask"] = ranking_taus(members, r["accuracy"], members, r["accuracy"], truth)["tau_shrunk"]
        row["mask_space_size"] = int(np.prod(shrunk.edge_mask().sum(axis=1)))
    base = space_metrics(random_pockets(truth, len(shrunk.pockets), cfg.radius, seed), truth)
    row["random_pockets"] = {k: base[k] for k in ("size", "mean_accuracy", "best_accuracy", "best_kept", "top_k_kept")}
    b = args.search_budget
    row["search"] = {
        "budget": b,
        "random_shrunk": search_shrunk(shrunk, TABLE, strategy="random", budget=min(b, m["size"]), seed=seed)["best_accuracy"],
        "evolution_shrunk": search_shrunk(shrunk, TABLE, strategy="evolution", budget=min(b, m["size"]), seed=seed,
                                          fallback="nearest")["best_accuracy"],
        "random_full": run_discrete_search(space="nb201", strategy="random", evaluator=TABLE, budget=b, seed=seed)["best_accuracy"],
        "random_full_same_total_queries": run_discrete_search(
            space="nb201", strategy="random", evaluator=TABLE, budget=min(len(truth), b + m["queries"]), seed=seed
        )["best_accuracy"],
    }
    return row


def summarise(rows: list[dict]) -> dict:
    out = {}
    flat = lambda r: {**{k: v for k, v in r.items() if not isinstance(v, (dict, list, str))},  # noqa: E731
                      **{f"{p}.{k}": v for p in ("random_pockets", "search") for k, v in r[p].items()}}
    keys = flat(rows[0]).keys()
    for k in keys:
        vals = [flat(r)[k] for r in rows]
        if k == "seed" or any(v is None for v in vals):
            continue
        arr = np.array(vals, dtype=float)
        out[k] = {"mean": round(float(arr.mean()), 4), "std": round(float(arr.std()), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--oneshot-steps", type=int, default=300)
    ap.add_argument("--oneshot-full-archs", type=int, default=0, help="0 = all 725 records")
    ap.add_argument("--search-budget", type=int, default=20)
    ap.add_argument("--no-oneshot", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT / "shrink_nb201.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    truth = true_accuracies(make_evaluator(TABLE))
    rows = []
    for s in range(args.seeds):
        rows.append(one_seed(s, args, truth))
        r = rows[-1]
        print(f"seed {s}: size {r['size']} mean {r['mean_accuracy']} best {r['best_accuracy']} kept {r['best_kept']} "
              f"queries {r['queries']} tau shrunk/full {r['tau_shrunk']}/{r['tau_full']} ({r['seconds']}s)", flush=True)
    result = {
        "benchmark": "shrink_nb201",
        "table": TABLE,
        "n_records": len(truth),
        "seeds": args.seeds,
        "config": asdict(ShrinkConfig()),
        "oneshot": None if args.no_oneshot else {
            "steps": args.oneshot_steps, "data": "digits", "C": 8, "N": 1, "batch_size": 64,
            "full_archs": args.oneshot_full_archs or len(truth),
        },
        "summary": summarise(rows),
        "locality": locality_report(list(truth), list(truth.values())),
        "per_seed": rows,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    write_json(args.out, result)
    print(f"wrote {args.out} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
