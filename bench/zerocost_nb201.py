"""dnas's zero-cost proxies vs NAS-Bench-Suite-Zero's published scores on the NB201 records.

Scores the 725 archs of ``nb201_cifar10_zc`` on the benchmark's evaluation network (C=16, N=5,
3x32x32 input, 10 classes, seed 0) with the data-independent proxies (default: synflow,
params, flops) and reports, per proxy, Spearman / Kendall against the published score and
against the records' CIFAR-10 validation accuracy, plus seconds per arch. With ``--dd N``, the
data-dependent proxies also run on N archs (every 725/N-th) on ``digits`` resized to 32x32
and repeated over 3 channels - there is no CIFAR-10 here, so their agreement with the
published (CIFAR-10) scores can only be approximate. Writes ``bench/results/zerocost_nb201.json``.

    python bench/zerocost_nb201.py                 # all 725 archs, ~0.4 s per arch for synflow
    python bench/zerocost_nb201.py --dd 60
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from importlib import resources
from pathlib import Path

from scipy import stats

from dnas.io import write_json
from dnas.predictors.zerocost import ProxyScorer

OUT = Path(__file__).resolve().parent / "results"
DATA_DEPENDENT = ["snip", "grasp", "fisher", "grad_norm", "jacov", "nwot", "epe_nas", "plain"]


def agreement(records: list[dict], scores: list[dict], proxy: str) -> dict:
    def pairs(key):
        return [(s[proxy], r[key]) for s, r in zip(scores, records)
                if r.get(key) is not None and math.isfinite(s[proxy]) and math.isfinite(r[key]) and abs(r[key]) < 1e8]

    out = {}
    for key, label in ((proxy, "published"), ("val_accuracy", "val_accuracy")):
        p = pairs(key)
        if len(p) > 2:
            out[f"spearman_vs_{label}"] = round(float(stats.spearmanr(*zip(*p))[0]), 4)
            out[f"kendall_vs_{label}"] = round(float(stats.kendalltau(*zip(*p))[0]), 4)
            out[f"n_vs_{label}"] = len(p)
    return out


def score(records: list[dict], proxies: list[str], **kw) -> tuple[list[dict], float]:
    s = ProxyScorer("nb201", proxies, **kw)
    t0 = time.perf_counter()
    rows = []
    for i, r in enumerate(records):
        rows.append(s.score(r["arch"]))
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{len(records)}", flush=True)
    return rows, (time.perf_counter() - t0) / max(len(records), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxies", nargs="*", default=["synflow", "params", "flops"])
    ap.add_argument("--limit", type=int, default=None, help="score every k-th record to keep about this many")
    ap.add_argument("--dd", type=int, default=0, help="data-dependent proxies on this many archs (digits)")
    ap.add_argument("--out", type=Path, default=OUT / "zerocost_nb201.json")
    args = ap.parse_args()
    recs = json.loads(resources.files("dnas.resources").joinpath("nb201_cifar10_zc.json").read_text())
    chosen = recs[:: max(1, len(recs) // args.limit)] if args.limit else recs
    res = {"benchmark": "zerocost_nb201", "network": "NB201 C=16 N=5, 3x32x32, 10 classes, seed 0",
           "machine": platform.platform(), "archs": len(chosen), "proxies": {}}
    rows, per = score(chosen, args.proxies, input_shape="3,32,32")
    res["seconds_per_arch"] = round(per, 3)
    for p in args.proxies:
        res["proxies"][p] = agreement(chosen, rows, p)
        print(p, res["proxies"][p], flush=True)
    if args.dd:
        sub = recs[:: max(1, len(recs) // args.dd)][: args.dd]
        rows, per = score(sub, DATA_DEPENDENT, data="digits", input_shape="3,32,32", batch_size=64)
        res["data_dependent"] = {"archs": len(sub), "data": "digits at 3x32x32 (published: CIFAR-10)",
                                 "seconds_per_arch": round(per, 3),
                                 "proxies": {p: agreement(sub, rows, p) for p in DATA_DEPENDENT}}
        for p in DATA_DEPENDENT:
            print(p, res["data_dependent"]["proxies"][p], flush=True)
    write_json(args.out, res)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
