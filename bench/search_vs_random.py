"""Does search beat random architectures on the same footing?

For each arm (a space, a relaxation, a dataset), run ``--search-seeds`` searches that all hold out
one test set (``split_seed`` fixed, checked in their ``splits.json``), draw ``--random`` architectures
uniformly from the same space, then train every architecture from scratch with the same training
seeds and budget and score it on that test set, which no search saw (each training run's
``splits.json`` is checked against every search's train and val indices). Reported per arm: mean
± 95% t-interval of the searched and of the random test accuracies, the best random one, and a
one-sided Mann-Whitney U test (searched > random). Writes bench/results/search_vs_random.json.

    python bench/search_vs_random.py                       # both arms, the budget in the README
    python bench/search_vs_random.py --arms darts-mnist --search-seeds 5 --random 10
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "search_vs_random.json"

#: Each arm: the search config (shared by its seeds) and the training budget of every architecture.
ARMS = {
    "darts-mnist": dict(
        space="darts", relaxations=["pc"],
        search=dict(data="mnist", image_size=8, max_samples=400, init_channels=8, layers=3, epochs=4,
                    warmup_epochs=1, arch_lr=1e-1, batch_size=64, guard="off"),
        train=dict(data="mnist", image_size=8, init_channels=8, layers=5, epochs=2, batch_size=64, auxiliary=False),
    ),
    "nb201-digits": dict(
        space="nb201", relaxations=["darts", "pc", "gdas"],
        search=dict(data="digits", image_size=8, max_samples=600, init_channels=8, layers=3, epochs=4,
                    warmup_epochs=1, arch_lr=1e-1, batch_size=64, guard="off"),
        train=dict(data="digits", image_size=8, init_channels=8, layers=3, epochs=3, batch_size=64, auxiliary=False),
    ),
}


def interval(xs: list[float]) -> dict:
    """Mean and the half-width of its 95% Student-t interval."""
    from scipy import stats

    m = statistics.mean(xs)
    if len(xs) < 2:
        return {"mean": m, "ci95": None, "n": len(xs)}
    half = stats.t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / len(xs) ** 0.5
    return {"mean": m, "ci95": half, "n": len(xs)}


def rank_test(searched: list[float], rand: list[float]) -> dict:
    from scipy import stats

    u = stats.mannwhitneyu(searched, rand, alternative="greater")
    return {"test": "Mann-Whitney U, one-sided (searched > random)", "U": float(u.statistic), "p": float(u.pvalue)}


def random_archs(space: str, n: int, seed: int) -> list:
    if space == "darts":
        from dnas.spaces.darts import random_genotype

        return [random_genotype(seed + i) for i in range(n)]
    from dnas.spaces.base import get_space

    sp, rng = get_space(space), random.Random(seed)
    return [sp.sample(rng) for _ in range(n)]


def _ids(path: Path, *keys: str) -> set[int]:
    rec = json.loads(path.read_text())
    return set().union(*(rec[k] for k in keys))


def run_arm(name: str, arm: dict, args, work: Path) -> list[dict]:
    import dnas

    rows = []
    threads = dict(threads=args.threads)
    test_from = None
    for relax in arm["relaxations"]:
        for seed in range(args.search_seeds):
            t0 = time.time()
            out = work / f"{name}-{relax}-s{seed}"
            r = dnas.search(out=out, space=arm["space"], relaxation=relax, seed=seed, split_seed=0, **arm["search"], **threads)
            test_from = test_from or out / "splits.json"
            assert _ids(out / "splits.json", "test") == _ids(test_from, "test"), "searches hold out different test sets"
            d = r.decision or {}
            rows.append({"arm": name, "kind": "searched", "relaxation": relax, "search_seed": seed, "arch": str(r.genotype),
                         "search_seconds": round(time.time() - t0, 1), "decided": d.get("decided"),
                         "mean_top1": d.get("mean_top1"), "top1_ratio": d.get("top1_ratio"), "mean_margin": d.get("mean_margin"),
                         "genotype": r.genotype, "run": out})
            print(f"{name} {relax} seed {seed}: {r.genotype}  decided={d.get('decided')} ratio={d.get('top1_ratio')} "
                  f"({rows[-1]['search_seconds']}s)", flush=True)
    for i, g in enumerate(random_archs(arm["space"], args.random, 1000)):
        rows.append({"arm": name, "kind": "random", "index": i, "arch": str(g), "genotype": g})
    seen = set().union(*(_ids(r["run"] / "splits.json", "train", "val") for r in rows if r["kind"] == "searched"))
    test_ids = _ids(test_from, "test")
    assert not seen & test_ids, "a search saw a test image"
    for row in rows:
        accs = []
        for ts in args.train_seeds:
            out = work / f"train-{name}-{row['kind']}-{row.get('relaxation', '')}{row.get('search_seed', row.get('index'))}-t{ts}"
            tr = dnas.train(row["genotype"], out=out, seed=ts, test_split_from=str(test_from), **arm["train"], **threads)
            trec = json.loads((out / "splits.json").read_text())
            assert set(trec["test"]) == test_ids and not (set(trec["train"]) | set(trec["val"])) & test_ids
            accs.append(tr.test_accuracy)
            row["params"] = tr.params
        row["test_accuracy"] = statistics.mean(accs)
        row["test_accuracies"] = accs
        print(f"  {row['kind']:8s} {row['arch'][:90]}  test {row['test_accuracy']:.4f}", flush=True)
    for row in rows:
        row.pop("genotype", None)
        row["run"] = str(row.get("run", "")) or None
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    rand = [r["test_accuracy"] for r in rows if r["kind"] == "random"]
    for relax in sorted({r["relaxation"] for r in rows if r["kind"] == "searched"}):
        found = [r["test_accuracy"] for r in rows if r["kind"] == "searched" and r["relaxation"] == relax]
        decided = [r["decided"] for r in rows if r["kind"] == "searched" and r["relaxation"] == relax]
        out.append({
            "relaxation": relax, "searched": interval(found), "random": interval(rand), "random_best": max(rand),
            "searched_best": max(found), "rank_test": rank_test(found, rand),
            "searched_beats_random_mean": statistics.mean(found) > statistics.mean(rand),
            "searched_mean_beats_random_best": statistics.mean(found) > max(rand),
            "decided": f"{sum(bool(d) for d in decided)}/{len(decided)}",
        })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", nargs="+", default=["nb201-digits", "darts-mnist"], choices=list(ARMS))
    ap.add_argument("--search-seeds", type=int, default=5)
    ap.add_argument("--random", type=int, default=10)
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from dnas.io import write_json

    work = Path(tempfile.mkdtemp(prefix="dnas-svr-"))
    t0 = time.time()
    result = {"benchmark": "search_vs_random", "search_seeds": args.search_seeds, "random": args.random,
              "train_seeds": args.train_seeds, "threads": args.threads, "arms": {}}
    for name in args.arms:
        rows = run_arm(name, ARMS[name], args, work)
        result["arms"][name] = {"config": {k: v for k, v in ARMS[name].items()}, "summary": summarise(rows), "rows": rows}
        result["seconds"] = round(time.time() - t0, 1)
        write_json(args.out, result)  # after every arm, so a long run leaves what it has
        for s in result["arms"][name]["summary"]:
            print(f"{name} {s['relaxation']}: searched {s['searched']['mean']:.4f} ± {s['searched']['ci95'] or 0:.4f} vs "
                  f"random {s['random']['mean']:.4f} ± {s['random']['ci95'] or 0:.4f} (best {s['random_best']:.4f}), "
                  f"U p={s['rank_test']['p']:.3f}, decided {s['decided']}", flush=True)
    print(f"-> {args.out} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
