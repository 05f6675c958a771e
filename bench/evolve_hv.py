"""NSGA-II network search vs random networks at the same number of evaluations: hypervolume.

For each seed: run ``dnas evolve`` (given blocks, error + params), count its distinct
evaluations N, then draw N distinct random networks from the same space with the same seed and
score them with the same evaluation (short real training, seeded, so a network drawn by both
gets the same value: the random baseline reuses those results). Each method's front is the
non-dominated set of its feasible evaluations; hypervolume (pymoo.indicators.hv) is computed on
(error, params / params_ref) with the reference point (1, 1), where params_ref is 1.1 x the
largest parameter count seen by either method for that seed.

Writes bench/results/evolve_hv.json. Sized for a 2-core CPU (a few minutes); --quick is smaller.

    python bench/evolve_hv.py [--seeds 0 1 2] [--population 8] [--generations 4] [--quick]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def hypervolume(F: np.ndarray) -> float:
    from pymoo.indicators.hv import HV

    F = np.asarray(F, dtype=float)
    F = F[np.all(F < 1.0, axis=1)] if len(F) else F
    return float(HV(ref_point=np.array([1.0, 1.0]))(F)) if len(F) else 0.0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-samples", type=int, default=600)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--blocks", default="DARTS_V2,PC_DARTS_cifar,DARTS_V1")
    ap.add_argument("--quick", action="store_true", help="population 4, 2 generations, 1 epoch, 300 images, 1 seed")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "evolve_hv.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.population, args.generations, args.epochs, args.max_samples = [0], 4, 2, 1, 300

    torch.set_num_threads(1)
    from dnas.evolve import evolve
    from dnas.evolve.problem import NetworkProblem, objective_vector
    from dnas.evolve.run import _space, feasible, pareto_front
    from dnas.trials import SerialExecutor

    objectives = ["error", "params"]
    fields = dict(data=args.data, image_size=None, max_samples=args.max_samples, blocks=args.blocks.split(","),
                  population=args.population, generations=args.generations, epochs=args.epochs, batch_size=32, lr=0.1,
                  widths=[4, 8, 16, 24], stem_widths=[8, 16], stages=3, max_repeats=2, max_reductions=2,
                  objectives=objectives)
    runs = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            t0 = time.perf_counter()
            res = evolve(Path(tmp) / f"nsga-{seed}", seed=seed, **fields)
            from dnas.evolve.run import evolve_config
            from dnas.evolve.blocks import load_blocks

            cfg = evolve_config(seed=seed, **fields)
            settings = cfg.settings()
            space = _space(cfg, load_blocks(res.run_dir / "blocks.json"))
            nsga_records = [json.loads(l) for l in (res.run_dir / "evals.jsonl").read_text().splitlines()]
            n = len(nsga_records)
            t_nsga = time.perf_counter() - t0

            # random networks, same count, same evaluation (reusing identical networks' results)
            problem = NetworkProblem(space, settings, SerialExecutor(max_retries=2))
            for rec in nsga_records:
                problem.cache.put(rec["key"], rec)
            rng = np.random.default_rng(seed)
            keys, X = set(), []
            while len(X) < n:
                x = space.random(rng)
                k = space.decode(x).hash()
                if k not in keys:
                    keys.add(k)
                    X.append(x)
            t1 = time.perf_counter()
            before = problem.evaluated
            rand_records = problem.evaluate_networks(np.array(X))
            t_rand = time.perf_counter() - t1

            ok_n = [r for r in nsga_records if feasible(r, settings)]
            ok_r = [r for r in rand_records if feasible(r, settings)]
            p_ref = 1.1 * max(r["params"] for r in ok_n + ok_r)
            norm = lambda recs: np.array([[r["error"], r["params"] / p_ref] for r in recs]) if recs else np.zeros((0, 2))
            fn, fr = pareto_front(ok_n, objectives), pareto_front(ok_r, objectives)
            run = {
                "seed": seed, "evaluations": n, "params_ref": p_ref,
                "nsga2": {"hv": hypervolume(norm(fn)), "front": [[r["error"], r["params"]] for r in fn],
                          "best_error": min(r["error"] for r in ok_n), "seconds": round(t_nsga, 1)},
                "random": {"hv": hypervolume(norm(fr)), "front": [[r["error"], r["params"]] for r in fr],
                           "best_error": min(r["error"] for r in ok_r), "trained": problem.evaluated - before,
                           "shared_with_nsga2": n - (problem.evaluated - before), "seconds": round(t_rand, 1)},
            }
            runs.append(run)
            print(f"seed {seed}: {n} evaluations; HV nsga2 {run['nsga2']['hv']:.4f} vs random {run['random']['hv']:.4f}",
                  file=sys.stderr, flush=True)
    hv_n = [r["nsga2"]["hv"] for r in runs]
    hv_r = [r["random"]["hv"] for r in runs]
    result = {
        "benchmark": "evolve_hv", "objectives": objectives, "settings": {k: v for k, v in fields.items() if k != "objectives"},
        "seeds": args.seeds, "runs": runs,
        "summary": {"nsga2_hv_mean": statistics.mean(hv_n), "random_hv_mean": statistics.mean(hv_r),
                    "nsga2_hv_std": statistics.pstdev(hv_n), "random_hv_std": statistics.pstdev(hv_r),
                    "nsga2_wins": sum(a > b for a, b in zip(hv_n, hv_r)), "seeds": len(runs)},
        "hv_reference": "(error 1.0, params 1.1 x max params seen per seed); HV on (error, params/params_ref)",
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                    "threads": 1},
        "seconds": round(time.perf_counter() - t_all, 1),
    }
    from dnas.io import write_json

    write_json(args.out, result)
    print(json.dumps(result["summary"], indent=2))
    return result


if __name__ == "__main__":
    main()
