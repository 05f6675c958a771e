"""How good is the finite-difference second-order step? Cosine between the unrolled architecture
gradient with the reference finite-difference Hessian-vector product (R = 0.01/||v||) and with the
exact one (double backward, ``hvp: exact``), and the time of one second-order step with each.

Setting: a small supernet of the DARTS space (default C=4, 3 cells, batch 32; the quick search's
C=8, 5 cells, batch 64 with ``--C 8 --layers 5 --batch 64``) on 16x16 MNIST from the bundled subset,
eta = lr = 0.1 (the quick search's), after ``--warm`` weight-only SGD steps so that the weights are
not at their initialisation. Per relaxation and seed, both gradients see the same batch and (for the
sampling relaxations) the same architecture sample. float32 is what a search runs in; float64
separates rounding from curvature, and its rows repeat the finite difference at smaller radii:
the error does not shrink steadily with R, because a perturbation of the weights crosses ReLU and
max-pool kinks (gradient jumps) until R is below the distance to the nearest one.

    python bench/hvp_accuracy.py                       # darts pc gdas msg, 3 seeds
    python bench/hvp_accuracy.py --relaxations darts --seeds 2 --warm 5

Writes bench/results/hvp_accuracy.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).parent / "results" / "hvp_accuracy.json"


def cosine(a, b) -> float:
    a, b = torch.cat([t.flatten() for t in a]).double(), torch.cat([t.flatten() for t in b]).double()
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))


def one(relaxation: str, seed: int, dtype: torch.dtype, args, radii=()) -> dict:
    from dnas.config import make_config
    from dnas.data import load_dataset
    from dnas.strategies.bilevel import Architect, build_supernet

    base = dict(relaxation=relaxation, unrolled=True, init_channels=args.C, layers=args.layers, seed=seed)
    cfg_fd, cfg_ex = make_config(overrides=base), make_config(overrides=dict(base, hvp="exact"))
    d = load_dataset("mnist", image_size=16)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(d.y), generator=g)
    torch.manual_seed(seed)
    net = build_supernet(cfg_fd, 10, 1).to(dtype)
    x, y = d.x[idx].to(dtype), d.y[idx]
    w_opt = torch.optim.SGD(net.weights(), lr=cfg_fd.lr, momentum=cfg_fd.momentum, weight_decay=cfg_fd.weight_decay)
    B = args.batch
    for s in range(args.warm):  # weight-only warm-up, as a search's first epochs
        xb, yb = x[B * s : B * (s + 1)], y[B * s : B * (s + 1)]
        loss, _ = net.relax.weight_loss(net, xb, yb)
        w_opt.zero_grad(set_to_none=True)
        loss.backward()
        for a in net.arch_parameters():
            a.grad = None
        w_opt.step()
    o = B * args.warm
    xt, yt, xv, yv = x[o : o + B], y[o : o + B], x[o + B : o + 2 * B], y[o + B : o + 2 * B]
    eta = cfg_fd.lr
    times = {}
    with net.relax.sample_scope():  # one architecture sample for both
        out = {}
        for name, cfg in (("exact", cfg_ex), ("finite-difference", cfg_fd)):
            arch = Architect(net, cfg)
            t0 = time.perf_counter()
            out[name], _ = arch._unrolled_grads(xt, yt, xv, yv, eta, w_opt)
            times[name] = time.perf_counter() - t0
        first = torch.autograd.grad(net.relax.arch_loss(net, xv, yv), net.arch_parameters())
        sweep = {}
        for r in radii:  # the same finite difference with other radii (R = r/||v||)
            arch = Architect(net, cfg_fd)
            arch.fd_radius = r
            sweep[str(r)] = cosine(arch._unrolled_grads(xt, yt, xv, yv, eta, w_opt)[0], out["exact"])
    return {
        "relaxation": relaxation, "seed": seed, "dtype": str(dtype).replace("torch.", ""),
        "cos_fd_vs_exact": cosine(out["finite-difference"], out["exact"]),
        "cos_first_order_vs_exact": cosine(first, out["exact"]),
        "seconds": times,
        **({"cos_fd_vs_exact_by_radius": sweep} if sweep else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--relaxations", nargs="+", default=["darts", "pc", "gdas", "msg"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--warm", type=int, default=10, help="weight-only SGD steps before measuring")
    ap.add_argument("--C", type=int, default=4)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--radii", type=float, nargs="*", default=[1e-3, 1e-4, 1e-5, 1e-6],
                    help="float64 rows also report the cosine at these other radii (R = r/||v||)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for relaxation in args.relaxations:
        for dtype in (torch.float32, torch.float64):
            for seed in range(args.seeds):
                r = one(relaxation, seed, dtype, args, radii=args.radii if dtype == torch.float64 else ())
                rows.append(r)
                print(json.dumps(r), flush=True)
    summary = {}
    for relaxation in args.relaxations:
        for dt in ("float32", "float64"):
            rs = [r for r in rows if r["relaxation"] == relaxation and r["dtype"] == dt]
            cs = [r["cos_fd_vs_exact"] for r in rs]
            summary[f"{relaxation}/{dt}"] = {
                "cos_fd_vs_exact_min": min(cs), "cos_fd_vs_exact_median": statistics.median(cs), "cos_fd_vs_exact_max": max(cs),
                "cos_first_order_vs_exact_median": statistics.median(r["cos_first_order_vs_exact"] for r in rs),
                "seconds_fd_median": statistics.median(r["seconds"]["finite-difference"] for r in rs),
                "seconds_exact_median": statistics.median(r["seconds"]["exact"] for r in rs),
            }
            if rs and "cos_fd_vs_exact_by_radius" in rs[0]:
                summary[f"{relaxation}/{dt}"]["cos_fd_vs_exact_median_by_radius"] = {
                    k: statistics.median(r["cos_fd_vs_exact_by_radius"][k] for r in rs) for k in rs[0]["cos_fd_vs_exact_by_radius"]}
    from dnas.io import write_json

    setting = {k: getattr(args, k) for k in ("seeds", "warm", "C", "layers", "batch", "threads")}
    write_json(args.out, {"setting": {**setting, "data": "mnist 16x16", "eta": 0.1, "R": "0.01/||v||"}, "summary": summary, "rows": rows})
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
