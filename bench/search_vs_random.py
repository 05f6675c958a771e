"""Does the searched cell beat random cells? Train the genotype of a search run, DARTS_V2
and N genotypes drawn uniformly from the DARTS space with the same budget, and compare test
accuracy. Writes bench/results/search_vs_random.json.

    python bench/search_vs_random.py --search runs/search-XXXX --random 4 --epochs 6
    python bench/search_vs_random.py            # runs the default `dnas search` first
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "search_vs_random.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--search", type=Path, help="a finished search run directory (default: run `dnas search` now)")
    ap.add_argument("--random", type=int, default=4, help="number of random genotypes")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--data", default=None, help="default: the data the search used")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    import dnas
    from dnas.genotype import PUBLISHED, load_genotype
    from dnas.io import write_json
    from dnas.spaces.darts import random_genotype

    work = Path(tempfile.mkdtemp(prefix="dnas-bench-"))
    t0 = time.time()
    if args.search is None:
        args.search = work / "search"
        dnas.search(out=args.search, threads=args.threads)
    search_seconds = time.time() - t0
    searched = load_genotype(args.search)
    data = args.data or searched.meta.get("data", "mnist")
    candidates = {"searched": searched, "DARTS_V2": PUBLISHED["DARTS_V2"]}
    for i in range(args.random):
        candidates[f"random_{i}"] = random_genotype(1000 + i)
    rows = []
    for name, g in candidates.items():
        r = dnas.train(g, out=work / f"train-{name}", data=data, epochs=args.epochs, seed=args.seed, threads=args.threads)
        rows.append({"name": name, "genotype": g.to_dict(with_meta=False), "test_accuracy": r.test_accuracy,
                     "params": r.params, "macs": r.macs, "seconds": r.seconds})
        print(f"{name:10s} test acc {r.test_accuracy:.4f}  params {r.params:,}", flush=True)
    rand = [r["test_accuracy"] for r in rows if r["name"].startswith("random")]
    found = next(r for r in rows if r["name"] == "searched")["test_accuracy"]
    result = {
        "benchmark": "search_vs_random",
        "data": data,
        "train_epochs": args.epochs,
        "search_run": str(args.search),
        "search_seconds": round(search_seconds, 1) if search_seconds > 1 else None,
        "rows": rows,
        "searched_test_accuracy": found,
        "random_mean_test_accuracy": statistics.mean(rand) if rand else None,
        "random_best_test_accuracy": max(rand) if rand else None,
        "searched_beats_random_mean": bool(rand) and found > statistics.mean(rand),
        "searched_rank_among_random": 1 + sum(a > found for a in rand),
    }
    write_json(args.out, result)
    print(f"searched {found:.4f} vs random mean {result['random_mean_test_accuracy']:.4f} -> {args.out}")


if __name__ == "__main__":
    main()
