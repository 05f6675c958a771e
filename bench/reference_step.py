"""Time one first-order search iteration of the authors' released DARTS or PC-DARTS code on CPU,
measured exactly as ``bench/search_step.py`` measures dnas (same sizes, batch, threads, warm-up,
median of the timed iterations, peak RSS of a fresh process).

The released code is not part of dnas and is not downloaded: point ``--code`` at a folder that
holds its ``model_search.py``, ``operations.py`` and ``genotypes.py`` (quark0/darts ``cnn/``, or
the yuhuixu1993/PC-DARTS root). ``.cuda()`` is made a no-op, and the iteration is the reference
``train_search.py`` loop with ``unrolled=False``: an Adam step on the architecture parameters
from the validation loss, then an SGD step (momentum 0.9, gradient clipping 5) on the weights.

    python bench/reference_step.py --code ~/src/darts/cnn --kind darts
    python bench/search_step.py --reference darts=~/src/darts/cnn pc=~/src/PC-DARTS   # side by side
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_step import time_iterations  # noqa: E402  (the same timing as dnas's rows)


def run(code: Path, kind: str, C: int, layers: int, batch: int, size: int, iters: int, warmup: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.Tensor.cuda = lambda self, *a, **k: self  # the released code calls .cuda() on its alphas
    sys.path.insert(0, str(code))
    from model_search import Network  # the released search network

    torch.manual_seed(0)
    criterion = torch.nn.CrossEntropyLoss()
    model = Network(C, 10, layers, criterion)
    lr, arch_lr = (0.025, 3e-4) if kind == "darts" else (0.1, 6e-4)  # the released train_search.py defaults
    w_opt = torch.optim.SGD(model.parameters(), lr, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=arch_lr, betas=(0.5, 0.999), weight_decay=1e-3)

    def batch_():
        return torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))

    def iteration():
        (xt, yt), (xv, yv) = batch_(), batch_()
        a_opt.zero_grad()
        model._loss(xv, yv).backward()
        a_opt.step()
        w_opt.zero_grad()
        criterion(model(xt), yt).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5)
        w_opt.step()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median, cpu_median = time_iterations(iteration, warmup, iters)
    return {"relaxation": f"reference:{kind}", "channels_last": False, "fast": False, "cl_kernels": False, "batch": batch,
            "seconds_per_iteration": median, "images_per_s": batch / median, "cpu_seconds_per_iteration": cpu_median,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_mb": rss_before,
            "code": str(code)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, required=True, help="folder with the released model_search.py, operations.py, genotypes.py")
    ap.add_argument("--kind", choices=["darts", "pc"], required=True)
    for opt, default in (("C", 16), ("layers", 8), ("batch", 64), ("size", 32), ("iters", 3), ("warmup", 1), ("threads", 2)):
        ap.add_argument(f"--{opt}", type=int, default=default)
    args = ap.parse_args()
    code = args.code.expanduser()
    missing = [f for f in ("model_search.py", "operations.py", "genotypes.py") if not (code / f).is_file()]
    if missing:
        sys.exit(f"--code: {code} lacks {', '.join(missing)}; give the folder of the released search code")
    print(json.dumps(run(code, args.kind, args.C, args.layers, args.batch, args.size, args.iters, args.warmup, args.threads)))


if __name__ == "__main__":
    main()
