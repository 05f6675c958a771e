"""Speed and memory of one first-order search iteration (architecture step + weight step).

Each configuration runs in a fresh subprocess (so peak RSS is its own), with the same
supernet size as the reference measurements in TARGETS.md: C=16, 8 cells, 32x32 inputs,
10 classes, batch 64, 2 threads. Reports images/s (train + val images of one iteration count
once: one iteration consumes `batch` training images, as the reference scripts count), peak
RSS, and ratios against the first configuration. Writes bench/results/search_step.json.

    python bench/search_step.py                         # darts vs pc, contiguous vs channels_last
    python bench/search_step.py --relaxations pc --iters 3 --batch 256
    python bench/search_step.py --relaxations all --channels-last off \
        --out bench/results/relaxations_step.json      # every relaxation, ratios vs darts

A relaxation is named as in the config, with an optional variant after a colon: ``topo:pc``
is TopoNAS with PC-DARTS op mixing (``topo_ops: pc``). MSG-DAS runs with its defaults (K=2
sub-graphs, ensemble distillation).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "search_step.json"
#: ``--relaxations all``: every built-in relaxation (``topo:pc`` = TopoNAS with PC-DARTS op mixing).
ALL_RELAXATIONS = ("darts", "pc", "gdas", "msg", "topo", "topo:pc",
                   "drnas", "snas", "fairdarts", "beta-darts", "darts-minus", "sdarts-rs", "sdarts-adv", "spos", "proxyless")


def worker(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from dnas.config import make_config
    from dnas.strategies.bilevel import Architect, build_supernet

    device = torch.device(args.device)
    name, _, variant = args.relaxation.partition(":")
    extra = {"topo_ops": variant} if name == "topo" and variant else {}
    cfg = make_config(overrides=dict(relaxation=name, **extra, init_channels=args.C, layers=args.layers,
                                     batch_size=args.batch, image_size=None, channels_last=args.channels_last))
    torch.manual_seed(0)
    model = build_supernet(cfg, 10, 3).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    w_opt = torch.optim.SGD(model.weights(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    architect = Architect(model, cfg)
    weights = model.weights()

    def batch():
        x = torch.randn(args.batch, 3, args.size, args.size, device=device)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, torch.randint(0, 10, (args.batch,), device=device)

    def iteration():
        (xt, yt), (xv, yv) = batch(), batch()
        if model.relax.needs_arch_step:  # spos trains the weights only
            architect.step(xt, yt, xv, yv, cfg.lr, w_opt)
        with model.relax.weight_scope(model, xt, yt):  # sdarts: the perturbation is part of the step
            loss, _ = model.relax.weight_loss(model, xt, yt)
            grads = torch.autograd.grad(loss, weights, allow_unused=True)  # single-path: unsampled ops unused
        for p, g in zip(weights, grads):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(weights, cfg.grad_clip)
        w_opt.step()
        w_opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    iteration()  # warm-up (allocator, oneDNN primitive cache)
    times = []
    for _ in range(args.iters):
        t = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2]
    out = {
        "relaxation": args.relaxation,
        "channels_last": args.channels_last,
        "batch": args.batch,
        "seconds_per_iteration": median,
        "images_per_s": args.batch / median,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before,
    }
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--relaxations", nargs="+", default=["darts", "pc"], help=f"names, or 'all' for: {' '.join(ALL_RELAXATIONS)}")
    ap.add_argument("--channels-last", choices=["off", "on", "both"], default="both")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--relaxation", help=argparse.SUPPRESS)
    ap.add_argument("--_cl", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        args.channels_last = bool(args._cl)
        print(json.dumps(worker(args)))
        return
    formats = {"off": [0], "on": [1], "both": [0, 1]}[args.channels_last]
    if args.relaxations == ["all"]:
        args.relaxations = list(ALL_RELAXATIONS)
    rows = []
    for relax in args.relaxations:
        for cl in formats:
            cmd = [sys.executable, __file__, "--_worker", "--relaxation", relax, "--_cl", str(cl)]
            for k in ("batch", "C", "layers", "size", "iters", "threads", "device"):
                cmd += [f"--{k}", str(getattr(args, k))]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                rows.append({"relaxation": relax, "channels_last": bool(cl), "error": proc.stderr.strip().splitlines()[-1:]})
            else:
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    base = next((r for r in rows if "images_per_s" in r), None)
    for r in rows:
        if base and "images_per_s" in r:
            r["speed_vs_first"] = round(r["images_per_s"] / base["images_per_s"], 3)
            r["memory_vs_first"] = round(r["peak_rss_mb"] / base["peak_rss_mb"], 3)
        darts = next((d for d in rows if d.get("relaxation") == "darts" and d.get("channels_last") == r.get("channels_last") and "images_per_s" in d), None)
        if darts and "images_per_s" in r:
            r["speed_vs_darts"] = round(r["images_per_s"] / darts["images_per_s"], 3)
            r["memory_vs_darts"] = round(r["peak_rss_mb"] / darts["peak_rss_mb"], 3)
            # peak RSS growth during the iterations (activations, gradients), without the import/model baseline
            grow, grow_d = r["peak_rss_mb"] - r["rss_before_mb"], darts["peak_rss_mb"] - darts["rss_before_mb"]
            if grow_d > 0:
                r["iteration_memory_vs_darts"] = round(grow / grow_d, 3)
            if "peak_cuda_mb" in r and "peak_cuda_mb" in darts:
                r["cuda_memory_vs_darts"] = round(r["peak_cuda_mb"] / darts["peak_cuda_mb"], 3)
    result = {
        "benchmark": "search_step",
        "config": {k: getattr(args, k) for k in ("batch", "C", "layers", "size", "iters", "threads", "device")},
        "reference_targets": {"darts_images_per_s": 2.6, "darts_peak_gb": 9.4, "pc_images_per_s": 10.4, "pc_peak_gb": 3.3},
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
        "rows": rows,
    }
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from dnas.io import write_json

    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
