"""Predictors x feature sets x training-set sizes on the shipped records: Kendall tau and
Spearman on the held-out archs, mean of ``--seeds`` splits.

Every registered predictor (GCN, MLP, random forest, gradient boosting) with the space's graph
/ one-hot (``graph``), NAS-Bench-Suite-Zero's published proxy scores (``zc``) or both
(``graph+zc``), trained on 25 / 50 / 100 / 200 archs of ``nb201_cifar10_zc`` (725 NB201 archs)
and ``nb301_cifar10_zc`` (300 DARTS-space archs; 200 leaves 100 to test). Writes
``bench/results/predictors.json`` and ``predictors.png``. Each records file can run in its own
process (``--records``), and ``--merge`` folds the per-file JSONs into one.

    python bench/predictors.py --records nb201_cifar10_zc --out bench/results/predictors_nb201.json
    python bench/predictors.py --records nb301_cifar10_zc --out bench/results/predictors_nb301.json
    python bench/predictors.py --merge bench/results/predictors_nb201.json bench/results/predictors_nb301.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from dnas.io import write_json
from dnas.predictors import FEATURE_SETS, predictor_evaluate

OUT = Path(__file__).resolve().parent / "results"
RECORDS = ("nb201_cifar10_zc", "nb301_cifar10_zc")


def run(records: list[str], predictors: list[str], features: list[str], sizes: list[int], seeds: int) -> dict:
    rows = []
    for rec in records:
        for size in sizes:
            for pred in predictors:
                for feat in features:
                    t0 = time.perf_counter()
                    r = predictor_evaluate(rec, pred, size, seeds, features=feat, untrained=False)
                    row = {"records": rec, "predictor": pred, "features": feat, "train_size": size,
                           "test_size": r["test_size"], "kendall_tau": r["kendall_tau"],
                           "kendall_tau_std": r["kendall_tau_std"], "spearman": r["spearman"],
                           "per_seed_tau": [round(p["kendall_tau"], 4) for p in r["per_seed"]],
                           "seconds": round(time.perf_counter() - t0, 1)}
                    if feat != "graph":
                        row["proxy_taus"] = {k: v for k, v in r["baselines"].items() if k.endswith("_kendall_tau")}
                    rows.append(row)
                    print(f"{rec} n={size:3d} {pred:4s} {feat:9s} tau {row['kendall_tau']:.3f} "
                          f"rho {row['spearman']:.3f} ({row['seconds']} s)", flush=True)
    return {"benchmark": "predictors", "seeds": seeds, "machine": platform.platform(), "rows": rows}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = sorted({r["records"] for r in results["rows"]})
    fig, axes = plt.subplots(1, len(recs), figsize=(6.5 * len(recs), 4.5), squeeze=False)
    for ax, rec in zip(axes[0], recs):
        rows = [r for r in results["rows"] if r["records"] == rec]
        for key in sorted({(r["predictor"], r["features"]) for r in rows}):
            pts = sorted((r["train_size"], r["kendall_tau"]) for r in rows if (r["predictor"], r["features"]) == key)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{key[0]} / {key[1]}",
                    ls="-" if key[1] == "graph+zc" else ("--" if key[1] == "zc" else ":"))
        ax.set_xscale("log")
        ax.set_xticks([25, 50, 100, 200], ["25", "50", "100", "200"])
        ax.set_xlabel("training archs")
        ax.set_ylabel("Kendall tau (held-out archs)")
        ax.set_title(f"{rec}, mean of {results['seeds']} seeds")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", nargs="*", default=list(RECORDS))
    ap.add_argument("--predictors", nargs="*", default=["gcn", "mlp", "rf", "gbm"])
    ap.add_argument("--features", nargs="*", default=list(FEATURE_SETS))
    ap.add_argument("--sizes", nargs="*", type=int, default=[25, 50, 100, 200])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT / "predictors.json")
    ap.add_argument("--merge", nargs="*", type=Path, help="fold these result files into --out and plot")
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        results = {**parts[0], "rows": [r for p in parts for r in p["rows"]]}
    else:
        results = run(args.records, args.predictors, args.features, args.sizes, args.seeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, results)
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and .png")


if __name__ == "__main__":
    main()
