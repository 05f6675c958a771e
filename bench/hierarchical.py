"""H-DAS benchmark: does the hierarchical search help at an equal small budget?

Three architectures, each searched with the same bilevel budget (epochs, data, width, layers,
relaxation) and then trained from scratch with the same training recipe:

* ``plain``: a DARTS cell search; the cell is stacked as usual (``layers`` cells);
* ``plain+stage``: the *same* cell, with a searched stage layout (hier_level stage: inter-cell
  links, depth step, cell-distribution search); its search time is reported on its own and
  cumulatively (it needs the plain search's cell first);
* ``stage-cells``: stage-specific cells (hier_level cell), stacked as usual.

Reported per architecture and seed: test accuracy, params, multiply-adds (of the trained
network and of the CIFAR-size network C=36, 20 layers), search seconds. Writes JSON to
``bench/results/hierarchical.json``. Runs on CPU in minutes with the defaults::

    python bench/hierarchical.py                      # digits 8px, 1 seed (~15 min on 2 busy cores)
    python bench/hierarchical.py --data mnist --image-size 16 --max-samples 2000
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dnas.api import search, train
from dnas.cost import network_cost
from dnas.io import write_json


def search_settings(a: argparse.Namespace, seed: int) -> dict:
    return dict(
        data=a.data, image_size=a.image_size, max_samples=a.max_samples, init_channels=a.C, layers=a.layers,
        batch_size=a.batch_size, epochs=a.search_epochs, warmup_epochs=1, relaxation=a.relaxation, seed=seed,
        threads=a.threads,
    )


def train_settings(a: argparse.Namespace, seed: int) -> dict:
    return dict(
        data=a.data, image_size=a.image_size, init_channels=a.C, layers=a.layers, epochs=a.train_epochs,
        batch_size=a.batch_size, seed=seed, threads=a.threads,
    )


def run(a: argparse.Namespace) -> dict:
    torch.set_num_threads(a.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed in a.seeds:
            base = search_settings(a, seed)
            searches = {}
            t, c = time.perf_counter(), time.process_time()
            plain = search(out=tmp / f"plain-{seed}", **base)
            searches["plain"] = (plain.genotype, time.perf_counter() - t, 0.0)
            cpu = {"plain": time.process_time() - c}
            t, c = time.perf_counter(), time.process_time()
            staged = search(
                out=tmp / f"stage-{seed}", space="hierarchical", hier_level="stage", cell=str(plain.run_dir / "genotype.json"),
                stage_end_search=True, **base,
            )
            searches["plain+stage"] = (staged.genotype, time.perf_counter() - t, searches["plain"][1])
            cpu["plain+stage"] = time.process_time() - c
            t, c = time.perf_counter(), time.process_time()
            cells = search(out=tmp / f"cells-{seed}", space="hierarchical", hier_level="cell", **base)
            searches["stage-cells"] = (cells.genotype, time.perf_counter() - t, 0.0)
            cpu["stage-cells"] = time.process_time() - c
            for name, (g, secs, prior) in searches.items():
                tr = train(g, out=tmp / f"train-{name}-{seed}", **train_settings(a, seed))
                cifar = network_cost(g, net="cifar", C=36, layers=20, num_classes=10, in_channels=3, image_size=32)
                row = {
                    "arch": name, "seed": seed, "test_accuracy": tr.test_accuracy, "params": tr.params, "macs": tr.macs,
                    "cifar_params": cifar["params"], "cifar_macs": cifar["macs"],
                    "search_seconds": round(secs, 2), "search_seconds_cumulative": round(secs + prior, 2),
                    "search_cpu_seconds": round(cpu[name], 2),
                    "train_seconds": tr.seconds, "genotype_hash": g.hash(), "genotype": g.to_dict(with_meta=False),
                }
                if g.stages is not None:
                    row["cells_per_stage"] = [st.num_cells for st in g.stages]
                rows.append(row)
                print(f"seed {seed} {name:12s} acc {tr.test_accuracy:.4f} params {tr.params:,} macs {tr.macs:,} "
                      f"search {secs:.0f}s", flush=True)
    summary = {}
    for name in ("plain", "plain+stage", "stage-cells"):
        rs = [r for r in rows if r["arch"] == name]
        accs = [r["test_accuracy"] for r in rs]
        summary[name] = {
            "test_accuracy_mean": statistics.fmean(accs),
            "test_accuracy_std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
            "params_mean": statistics.fmean(r["params"] for r in rs),
            "macs_mean": statistics.fmean(r["macs"] for r in rs),
            "cifar_params_mean": statistics.fmean(r["cifar_params"] for r in rs),
            "search_seconds_mean": statistics.fmean(r["search_seconds"] for r in rs),
            "search_seconds_cumulative_mean": statistics.fmean(r["search_seconds_cumulative"] for r in rs),
            "search_cpu_seconds_mean": statistics.fmean(r["search_cpu_seconds"] for r in rs),
        }
    return {
        "benchmark": "hierarchical (H-DAS) vs plain stacked cell at an equal search and training budget",
        "settings": {"search": search_settings(a, "SEED"), "train": train_settings(a, "SEED"), "seeds": a.seeds},
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": a.threads,
                    "note": "wall seconds on a shared 2-core machine mostly measure the neighbours' load; compare search_cpu_seconds"},
        "summary": summary,
        "runs": rows,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--image-size", type=int, default=8)
    p.add_argument("--max-samples", type=int, default=500, help="images used by each search (training uses all)")
    p.add_argument("--C", type=int, default=4)
    p.add_argument("--layers", type=int, default=8, help="8 = 2 normal cells per stage")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--search-epochs", type=int, default=3)
    p.add_argument("--train-epochs", type=int, default=6)
    p.add_argument("--relaxation", default="pc")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "hierarchical.json"))
    a = p.parse_args()
    result = run(a)
    write_json(a.out, result)
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
