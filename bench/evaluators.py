"""Evaluators on every space: what one query costs, and how weight sharing ranks against training.

For each built-in space: seconds of one ``train:EPOCHS`` query (the space's proxy network on
digits) and of training the ``ws:EPOCHS`` supernet once plus one ``ws`` query. Then, on the
NB201 space, the Kendall tau between the ``ws:`` scores and the ``train:`` scores of the same
sampled architectures (how well the random-sampling-with-weight-sharing baseline ranks).
Writes bench/results/evaluators.json.

    PYTHONPATH=src python bench/evaluators.py [--archs 12] [--epochs 3]
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "evaluators.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    from dnas.evaluators.base import make_evaluator
    from dnas.matrix import builtin_spaces
    from dnas.predictors.metrics import kendall_tau
    from dnas.spaces.base import get_space

    make_evaluator("train:1,max_samples=40", space=get_space("nb201")).evaluate(get_space("nb201").sample(random.Random(0)))
    per_space = {}
    for name in builtin_spaces():
        sp = get_space(name)
        arch = sp.sample(random.Random(1))
        t = time.perf_counter()
        r = make_evaluator("train:1", space=sp).evaluate(arch)
        row = {"train1_query_s": round(time.perf_counter() - t, 3), "train1_accuracy": round(r.accuracy, 2),
               "proxy_params_m": round(r.cost["params_m"], 4)}
        if sp.relaxations:
            ev = make_evaluator("ws:1", space=sp)
            t = time.perf_counter()
            ev.fit()
            row["ws1_supernet_train_s"] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            ev.evaluate(arch)
            row["ws_query_s"] = round(time.perf_counter() - t, 3)
        per_space[name] = row
        print(name, row, flush=True)

    sp = get_space("nb201")
    rng = random.Random(0)
    archs = []
    while len(archs) < args.archs:
        a = sp.sample(rng)
        if a not in archs:
            archs.append(a)
    train = make_evaluator(f"train:{args.epochs}", space=sp)
    ws = make_evaluator(f"ws:{args.epochs}", space=sp)
    t = time.perf_counter()
    y_train = [train.evaluate(a).accuracy for a in archs]
    t_train = time.perf_counter() - t
    t = time.perf_counter()
    y_ws = [ws.evaluate(a).accuracy for a in archs]
    t_ws = time.perf_counter() - t
    ranking = {"space": "nb201", "archs": len(archs), "epochs": args.epochs, "data": "digits",
               "kendall_tau_ws_vs_train": round(float(kendall_tau(y_ws, y_train)), 3),
               "train_seconds_total": round(t_train, 1), "ws_seconds_total": round(t_ws, 1),
               "train_accuracy": [round(v, 2) for v in y_train], "ws_accuracy": [round(v, 2) for v in y_ws]}
    print(ranking, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from dnas.io import write_json

    write_json(out, {"per_space": per_space, "ranking": ranking, "threads": 1})


if __name__ == "__main__":
    main()
