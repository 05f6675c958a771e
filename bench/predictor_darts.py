"""Predictors on the shipped DARTS-space records (NAS-Bench-301, 300 archs): Kendall tau of a
GCN on the space's graph encoding and an MLP on its one-hot, against ranking by parameter count.

``dnas.predictors.metrics.predictor_evaluate`` (what ``dnas predictor evaluate --records
nb301_cifar10 --seeds 3`` runs): per seed, 100 training archs, the other 200 held out. Writes
``bench/results/predictor_darts.json``.

    python bench/predictor_darts.py --seeds 3 --train-size 100
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

from dnas.io import write_json
from dnas.predictors.metrics import predictor_evaluate

OUT = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=100)
    ap.add_argument("--records", default="nb301_cifar10")
    args = ap.parse_args()
    res = {"benchmark": "predictor_darts", "records": args.records, "train_size": args.train_size,
           "seeds": args.seeds, "machine": platform.platform(), "predictors": {}}
    for name in ("gcn", "mlp"):
        r = predictor_evaluate(args.records, name, args.train_size, args.seeds)
        res["predictors"][name] = r
        print(f"{name}: tau {r['kendall_tau']:.3f} (std {r['kendall_tau_std']:.3f}); baselines {r['baselines']}", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    write_json(OUT / "predictor_darts.json", res)
    print(f"wrote {OUT / 'predictor_darts.json'}")


if __name__ == "__main__":
    main()
