"""Latency-aware DARTS: a sweep of the cost weight lambda on digits.

For each lambda, a bilevel search (softmax relaxation) with ``cost_objective: latency_table``
(expected latency of the derived evaluation network from the per-op table measured on this
machine) derives a genotype; its evaluation network is then

* measured on this machine (all genotypes interleaved, median of thread-CPU-time calls, see
  dnas.latency), next to its lookup-table estimate, and
* trained from scratch on digits and tested (dnas.trainer).

Writes bench/results/cost_lambda.json and cost_lambda.png (test accuracy vs measured latency,
one point per lambda). Run: ``python bench/cost_lambda.py [--lambdas 0 0.1 0.3 1 3] [--seeds 0]``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import dnas
import dnas.api as api
from dnas.io import write_json
from dnas.latency import LatencyTable, measure_modules
from dnas.opcost import NetShape, build_net, cost_matrices, genotype_cost
from dnas.ops import DARTS_PRIMITIVES

OUT = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1.0, 3.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--search-epochs", type=int, default=6)
    ap.add_argument("--train-epochs", type=int, default=10)
    ap.add_argument("--max-samples", type=int, default=900)
    ap.add_argument("--arch-lr", type=float, default=3e-3)
    ap.add_argument("--append", action="store_true", help="keep the rows of an earlier run (other lambdas) and re-measure all together")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    args = ap.parse_args()
    if args.plot_only:
        plot(json.loads((OUT / "cost_lambda.json").read_text())["rows"], OUT / "cost_lambda.png")
        return
    torch.set_num_threads(1)

    # the searched cells go into this evaluation network; its latency is what lambda trades
    C, layers, size = 8, 5, 8
    net = NetShape(C=C, layers=layers, image_size=size, in_channels=1, num_classes=10)
    search = dict(data="digits", image_size=size, init_channels=4, layers=3, batch_size=64,
                  max_samples=args.max_samples, epochs=args.search_epochs, warmup_epochs=1, relaxation="darts",
                  arch_lr=args.arch_lr, threads=1, guard="off", cost_objective="latency_table",
                  cost_channels=C, cost_layers=layers, cost_image_size=size)
    rows, t_all = [], time.time()
    if args.append and (OUT / "cost_lambda.json").exists():
        rows = [r for r in json.loads((OUT / "cost_lambda.json").read_text())["rows"]
                if not (r["lambda"] in args.lambdas and r["seed"] in args.seeds)]
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for lam in args.lambdas:
                t0 = time.time()
                r = api.search(out=Path(tmp) / f"s{seed}-l{lam}", seed=seed, cost_lambda=lam, **search)
                search_s = time.time() - t0
                t1 = time.time()
                tr = api.train(r.genotype, out=Path(tmp) / f"t{seed}-l{lam}", data="digits", image_size=size,
                                init_channels=C, layers=layers, epochs=args.train_epochs, auxiliary=False,
                                drop_path_prob=0.0, batch_size=64, seed=seed, threads=1, augment=False)
                rows.append({"lambda": lam, "seed": seed, "genotype": r.genotype.to_dict(with_meta=False),
                             "search_val_acc": r.history[-1]["val_acc"], "expected_latency_term": r.history[-1]["arch_terms"].get("cost"),
                             "test_accuracy": tr.test_accuracy, "params": tr.params, "macs": tr.macs,
                             "search_seconds": round(search_s, 1), "train_seconds": round(time.time() - t1, 1)})
                print(f"seed {seed} lambda {lam}: test acc {tr.test_accuracy:.3f}, macs {tr.macs}, "
                      f"search {search_s:.0f}s", flush=True)

    # measure every derived network together, interleaved, so load changes hit all alike
    rows.sort(key=lambda r: (r["seed"], r["lambda"]))
    genos = [dnas.Genotype.from_dict(r["genotype"]) for r in rows]
    nets = [build_net(g, net) for g in genos]
    ms = measure_modules(nets, [net.input_shape] * len(nets), repeats=31, warmup=5)
    table = LatencyTable("cpu")
    mats = cost_matrices(DARTS_PRIMITIVES, net, "latency", table)
    for r, g, m in zip(rows, genos, ms):
        r["latency_ms"] = round(m, 4)
        r["table_ms"] = round(genotype_cost(g, DARTS_PRIMITIVES, mats), 4)

    from scipy.stats import spearmanr

    lams = [r["lambda"] for r in rows]
    result = {
        "what": "lambda sweep of latency-aware DARTS (cost_objective latency_table) on digits 8x8",
        "search": search, "eval_net": {"C": C, "layers": layers, "image_size": size, "train_epochs": args.train_epochs},
        "latency_protocol": "median of 31 interleaved thread-CPU-time calls, batch 1, 1 thread",
        "spearman_lambda_vs_latency": round(float(spearmanr(lams, [r["latency_ms"] for r in rows])[0]), 3),
        "spearman_lambda_vs_table": round(float(spearmanr(lams, [r["table_ms"] for r in rows])[0]), 3),
        "seconds": round(time.time() - t_all, 1),
        "rows": rows,
    }
    write_json(OUT / "cost_lambda.json", result)
    plot(rows, OUT / "cost_lambda.png")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [r["latency_ms"] for r in rows]
    ys = [100 * r["test_accuracy"] for r in rows]
    sc = a.scatter(xs, ys, c=[r["lambda"] for r in rows], cmap="viridis", s=60)
    for r, x, y in zip(rows, xs, ys):
        a.annotate(f"λ={r['lambda']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    a.set_xlabel("measured latency of the derived network (ms, this CPU, 1 thread)")
    a.set_ylabel("test accuracy (%) on digits")
    a.set_title("accuracy vs latency across λ")
    fig.colorbar(sc, ax=a, label="λ (per ms)")
    lam = sorted({r["lambda"] for r in rows})
    for key, label in (("latency_ms", "measured"), ("table_ms", "lookup-table sum")):
        b.plot(lam, [sum(r[key] for r in rows if r["lambda"] == l) / sum(1 for r in rows if r["lambda"] == l) for l in lam],
               "o-", label=label)
    b.set_xscale("symlog", linthresh=min([l for l in lam if l > 0], default=0.1))
    b.set_xlabel("λ")
    b.set_ylabel("latency (ms)")
    b.set_title("latency of the derived network vs λ")
    b.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
