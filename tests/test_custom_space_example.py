"""examples/custom_space.py runs as a user would run it, and the top-level API composes."""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import torch

import dnas

ROOT = Path(__file__).resolve().parents[1]


def test_custom_space_example_runs_three_strategies():
    src = (ROOT / "examples" / "custom_space.py").read_text()
    assert len(src.splitlines()) <= 60
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.run([sys.executable, "examples/custom_space.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    rows = re.findall(r"^(random|evolution|local-search)\s+best ([\d.]+)% (\{.*\})\s+hypervolume ([\d.]+)$", p.stdout, re.M)
    assert [r[0] for r in rows] == ["random", "evolution", "local-search"], p.stdout
    for _, acc, arch, hv in rows:
        assert 10.0 < float(acc) <= 100.0 and 0.0 <= float(hv) <= 1.0  # really trained: beats chance on 10 classes
        assert '"layers"' in arch


def test_top_level_api_space_sample_build_and_strategy(tmp_path):
    assert {"darts", "nb201"} <= set(dnas.space_names())
    assert {"random", "evolution", "local-search", "nsga2", "bohb"} <= set(dnas.strategy_names())
    space = dnas.get_space("nb201")
    arch = space.sample(random.Random(0))
    net = space.build(arch, C=4, N=1)
    assert isinstance(net, torch.nn.Module) and net(torch.zeros(2, 3, 8, 8)).shape == (2, 10)
    r = dnas.run_strategy(space, "local-search", "tabular:nb201_cifar10", budget=15, seed=0, out=tmp_path / "run")
    assert r["queries"] == 15 and (tmp_path / "run" / "result.json").exists()
    assert space.parse(r["best_arch"]) in {space.parse(h["arch"]) for h in r["history"]}
