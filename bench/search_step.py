"""Speed and memory of one first-order search iteration (architecture step + weight step).

Each configuration runs in a fresh subprocess (so peak RSS is its own), with the same
supernet size as the reference measurements in TARGETS.md: C=16, 8 cells, 32x32 inputs,
10 classes, batch 64, 2 threads. Reports images/s (train + val images of one iteration count
once: one iteration consumes `batch` training images, as the reference scripts count), peak
RSS, and ratios against the first configuration. Writes bench/results/search_step.json.

    python bench/search_step.py                         # darts vs pc, fast path vs plain path, 2 rounds
    python bench/search_step.py --relaxations all --rounds 1 --size 16 --batch 32
    python bench/search_step.py --relaxations pc --iters 3 --batch 256
    python bench/search_step.py --fast off --cl-kernels both  # channels_last kernels vs NCHW, side by side
    python bench/search_step.py --fast both --channels-last both --reference darts=DIR pc=DIR  # vs the released code
    python bench/search_step.py --relaxations all --channels-last off \
        --out bench/results/relaxations_step.json      # every relaxation, ratios vs darts

``--fast both`` (default) runs every relaxation with the fast edge path (``fast: true``,
dnas.relax.fused) and the plain path, and reports ``fast_vs_plain`` speed and memory ratios,
which do not depend on the machine's load as the absolute numbers do. ``--rounds`` repeats the
whole set of configurations in alternating order (each configuration in its own process every
round); the JSON keeps every round's figures and the median. The load average at the start
and end is recorded. ``--device cuda`` reports CUDA peak memory too.

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


def time_iterations(iteration, warmup: int, iters: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``iters`` calls of ``iteration`` after ``warmup`` untimed
    ones (allocator, oneDNN primitive cache). CPU seconds count all of this process's threads."""
    for _ in range(warmup):
        iteration()
    times, cpu = [], []
    for _ in range(iters):
        t, c = time.perf_counter(), time.process_time()
        iteration()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    times.sort()
    cpu.sort()
    return times[len(times) // 2], cpu[len(cpu) // 2]


def worker(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    import dnas.ops

    dnas.ops.CHANNELS_LAST_KERNELS = bool(args.cl_kernels)
    from dnas.config import make_config
    from dnas.strategies.bilevel import Architect, build_supernet

    device = torch.device(args.device)
    name, _, variant = args.relaxation.partition(":")
    extra = {"topo_ops": variant} if name == "topo" and variant else {}
    cfg = make_config(overrides=dict(relaxation=name, **extra, init_channels=args.C, layers=args.layers,
                                     batch_size=args.batch, image_size=None, channels_last=args.channels_last,
                                     fast=args.fast))
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
    median, cpu_median = time_iterations(iteration, args.warmup, args.iters)
    out = {
        "relaxation": args.relaxation,
        "channels_last": args.channels_last,
        "fast": args.fast,
        "cl_kernels": bool(args.cl_kernels),
        "batch": args.batch,
        "seconds_per_iteration": median,
        "images_per_s": args.batch / median,
        # CPU seconds of this process (all its threads): less sensitive to other jobs than wall time
        "cpu_seconds_per_iteration": cpu_median,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before,
    }
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _key(r: dict) -> tuple:
    return (r["relaxation"], bool(r["channels_last"]), bool(r["fast"]), bool(r.get("cl_kernels", True)))


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def _merge_rounds(runs: list[dict]) -> dict:
    """One row per configuration: the median over rounds, and every round's figures."""
    ok = [r for r in runs if "images_per_s" in r]
    if not ok:
        return runs[0]
    row = dict(ok[0])
    for k in ("seconds_per_iteration", "images_per_s", "cpu_seconds_per_iteration", "peak_rss_mb", "rss_before_mb", "peak_cuda_mb"):
        if k in row:
            row[k] = _median([r[k] for r in ok])
    row["images_per_s_rounds"] = [round(r["images_per_s"], 3) for r in ok]
    row["peak_rss_mb_rounds"] = [round(r["peak_rss_mb"], 1) for r in ok]
    return row


def _ratios(rows: list[dict]) -> None:
    """Speed and memory of every row against the first row, DARTS (same format and path) and
    its own plain path (same relaxation and format)."""
    def find(relax, cl, fast, k=True):
        return next((d for d in rows if "images_per_s" in d and _key(d) == (relax, cl, fast, k)), None)

    def put(r, d, name):
        if d is None:
            return
        r[f"speed_vs_{name}"] = round(r["images_per_s"] / d["images_per_s"], 3)
        if r.get("cpu_seconds_per_iteration") and d.get("cpu_seconds_per_iteration"):
            r[f"cpu_speed_vs_{name}"] = round(d["cpu_seconds_per_iteration"] / r["cpu_seconds_per_iteration"], 3)
        r[f"memory_vs_{name}"] = round(r["peak_rss_mb"] / d["peak_rss_mb"], 3)
        # peak RSS growth during the iterations (activations, gradients), without the import/model baseline
        grow, grow_d = r["peak_rss_mb"] - r["rss_before_mb"], d["peak_rss_mb"] - d["rss_before_mb"]
        if grow_d > 0:
            r[f"iteration_memory_vs_{name}"] = round(grow / grow_d, 3)
        if "peak_cuda_mb" in r and "peak_cuda_mb" in d:
            r[f"cuda_memory_vs_{name}"] = round(r["peak_cuda_mb"] / d["peak_cuda_mb"], 3)

    base = next((r for r in rows if "images_per_s" in r), None)
    for r in rows:
        if "images_per_s" not in r:
            continue
        put(r, base, "first")
        k = r.get("cl_kernels", True)
        put(r, find("darts", r["channels_last"], r["fast"], k), "darts")
        if r["fast"]:
            put(r, find(r["relaxation"], r["channels_last"], False, k), "plain")
        if k:
            put(r, find(r["relaxation"], r["channels_last"], r["fast"], False), "nchw_kernels")
        if not r["relaxation"].startswith("reference:"):
            put(r, find(f"reference:{r['relaxation']}", False, False, False), "reference")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--relaxations", nargs="+", default=["darts", "pc"], help=f"names, or 'all' for: {' '.join(ALL_RELAXATIONS)}")
    ap.add_argument("--channels-last", choices=["off", "on", "both"], default="off", help="whole supernet in channels_last (the fast path already runs its convolutions so)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed iterations first (0 on a loaded machine: every configuration then pays the same first-call costs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fast", choices=["off", "on", "both"], default="both", help="fast edge path (config field fast)")
    ap.add_argument("--cl-kernels", choices=["off", "on", "both"], default="on",
                    help="run large/dilated depthwise convs and max pools in channels_last on CPU (dnas.ops.CHANNELS_LAST_KERNELS); both = side by side")
    ap.add_argument("--_k", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds over all configurations")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--reference", nargs="*", default=[], metavar="KIND=DIR",
                    help="also time the released code (bench/reference_step.py) in the same rounds: darts=DIR and/or pc=DIR, "
                         "each DIR holding model_search.py, operations.py, genotypes.py; rows get speed_vs_reference / memory_vs_reference")
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--relaxation", help=argparse.SUPPRESS)
    ap.add_argument("--_cl", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--_fast", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        args.channels_last = bool(args._cl)
        args.fast = bool(args._fast)
        args.cl_kernels = bool(args._k)
        print(json.dumps(worker(args)))
        return
    formats = {"off": [0], "on": [1], "both": [0, 1]}[args.channels_last]
    fasts = {"off": [0], "on": [1], "both": [1, 0]}[args.fast]
    if args.relaxations == ["all"]:
        args.relaxations = list(ALL_RELAXATIONS)
    kernels = {"off": [0], "on": [1], "both": [1, 0]}[args.cl_kernels]
    configs = [(relax, cl, f, k) for relax in args.relaxations for cl in formats for f in fasts for k in kernels]
    references = {}
    for item in args.reference:
        kind, sep, folder = item.partition("=")
        if not sep or kind not in ("darts", "pc"):
            sys.exit(f"--reference: expected darts=DIR or pc=DIR, got {item!r}")
        references[kind] = str(Path(folder).expanduser())
        configs.append((f"reference:{kind}", 0, 0, 0))
    load_start = os.getloadavg()
    runs: dict[tuple, list[dict]] = {c: [] for c in configs}
    for rnd in range(args.rounds):
        for relax, cl, f, k in configs if rnd % 2 == 0 else configs[::-1]:  # alternate the order
            if relax.startswith("reference:"):
                kind = relax.partition(":")[2]
                cmd = [sys.executable, str(Path(__file__).with_name("reference_step.py")), "--code", references[kind], "--kind", kind]
                opts = ("batch", "C", "layers", "size", "iters", "warmup", "threads")
            else:
                cmd = [sys.executable, __file__, "--_worker", "--relaxation", relax, "--_cl", str(cl), "--_fast", str(f), "--_k", str(k)]
                opts = ("batch", "C", "layers", "size", "iters", "warmup", "threads", "device")
            for opt in opts:
                cmd += [f"--{opt}", str(getattr(args, opt))]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                out = {"relaxation": relax, "channels_last": bool(cl), "fast": bool(f), "cl_kernels": bool(k), "error": proc.stderr.strip().splitlines()[-1:]}
            else:
                out = json.loads(proc.stdout.strip().splitlines()[-1])
            out["round"] = rnd + 1
            runs[(relax, cl, f, k)].append(out)
            print(json.dumps(out), flush=True)
    rows = [_merge_rounds(runs[c]) for c in configs]
    _ratios(rows)
    result = {
        "benchmark": "search_step",
        "config": {k: getattr(args, k) for k in ("batch", "C", "layers", "size", "iters", "warmup", "threads", "device", "rounds")},
        # issue 17's side-by-side measurement of the released reference code on an earlier day (2 threads,
        # 2 rounds); with --reference, the rows "reference:darts" / "reference:pc" are this run's
        "reference_issue17": {"darts_images_per_s": [2.8, 2.8], "darts_peak_gb": 9.4, "pc_images_per_s": [7.6, 6.0], "pc_peak_gb": 3.3},
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_start": load_start[0], "load_avg_1m_end": os.getloadavg()[0],
                    "loaded": max(load_start[0], os.getloadavg()[0]) > 0.5 * (os.cpu_count() or 1)},
        "rows": rows,
    }
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from dnas.io import write_json

    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
