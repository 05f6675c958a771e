"""Proxy fusion against its baselines over many seeds, with paired differences.

The criterion of issue 15 (GCN on graph + proxies above both the GCN on graphs and a random
forest on proxies, 100 training archs) is decided by differences of 0.003-0.02 in Kendall tau,
while one seed's split moves tau by 0.01-0.03. This bench runs every method on the *same* seeds
(the same train / held-out splits) and reports, per records file, the mean and std of tau over
seeds and each method's paired difference against the GCN on graphs and against the forest on
proxies (mean, standard error, seeds won). Writes ``bench/results/fusion_seeds.json``.

    python bench/fusion_seeds.py --seeds 10
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from dnas.io import write_json
from dnas.predictors import predictor_evaluate

OUT = Path(__file__).resolve().parent / "results" / "fusion_seeds.json"
RECORDS = ("nb201_cifar10_zc", "nb301_cifar10_zc")
#: name -> (predictor, features, options)
METHODS = {
    "gcn_graph": ("gcn", "graph", {}),
    "gcn_graph+zc_concat": ("gcn", "graph+zc", {"fusion": "concat"}),
    "gcn_graph+zc_gated": ("gcn", "graph+zc", {"fusion": "gated"}),
    "rf_zc": ("rf", "zc", {}),
}


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    d = a - b
    return {"mean": round(float(d.mean()), 4), "se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4) if len(d) > 1 else None,
            "wins": int((d > 0).sum()), "seeds": len(d)}


def run(records: list[str], seeds: int, train_size: int) -> dict:
    out = {"benchmark": "fusion_seeds", "train_size": train_size, "seeds": seeds, "machine": platform.platform(), "records": {}}
    for rec in records:
        taus, rows = {}, {}
        for name, (pred, feats, opts) in METHODS.items():
            t0 = time.perf_counter()
            r = predictor_evaluate(rec, pred, train_size, seeds, features=feats, untrained=False, **opts)
            taus[name] = np.array([p["kendall_tau"] for p in r["per_seed"]])
            rows[name] = {"kendall_tau": round(float(taus[name].mean()), 4), "kendall_tau_std": round(float(taus[name].std()), 4),
                          "spearman": round(float(r["spearman"]), 4), "per_seed_tau": [round(float(t), 4) for t in taus[name]],
                          "seconds": round(time.perf_counter() - t0, 1)}
            print(f"{rec} {name:22s} tau {rows[name]['kendall_tau']:.4f} +- {rows[name]['kendall_tau_std']:.4f}", flush=True)
        for name, row in rows.items():
            row["vs_gcn_graph"] = paired(taus[name], taus["gcn_graph"])
            row["vs_rf_zc"] = paired(taus[name], taus["rf_zc"])
        out["records"][rec] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", nargs="*", default=list(RECORDS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--train-size", type=int, default=100)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    res = run(args.records, args.seeds, args.train_size)
    write_json(args.out, res)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
