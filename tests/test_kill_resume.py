"""kill -9 at sampled points of every long-running command, then resume: the result must be
bitwise the one of an uninterrupted run.

The kill points are the durable writes themselves: a small preamble module counts ``os.fsync``
calls (every atomic write and every log line fsyncs, see :mod:`dnas.io`) and sends SIGKILL to its
own process at the k-th one, so a kill lands inside an atomic write (before the rename: a stray
temporary is left), between the manifest's two updates, right after a log line, and so on. k is
drawn (seeded) from the number of fsyncs an uninterrupted run makes."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dnas.cli import main

KILLER = """
import os, signal, sys
_n, _at = [0], int(os.environ["DNAS_KILL_AT"])
_fsync = os.fsync
def _fsync_then_maybe_die(fd):
    _n[0] += 1
    if _n[0] == _at:
        os.kill(os.getpid(), signal.SIGKILL)
    return _fsync(fd)
os.fsync = _fsync_then_maybe_die
from dnas.cli import main
sys.exit(main(sys.argv[1:]))
"""

TABLE = "tabular:nb201_cifar10"
TINY_SEARCH = ["--data", "digits", "--image-size", "8", "--init-channels", "4", "--layers", "3", "--epochs", "3",
               "--batch-size", "64", "--max-samples", "160", "--warmup-epochs", "1", "--guard", "off", "--threads", "1"]
TINY_TRAIN = ["DARTS_V2", "--data", "digits", "--image-size", "8", "--init-channels", "4", "--layers", "2",
              "--epochs", "3", "--batch-size", "128", "--threads", "1"]
TINY_EVOLVE = ["--data", "digits", "--blocks", "DARTS_V2", "--population", "4", "--generations", "2", "--epochs", "1",
               "--image-size", "8", "--max-samples", "120", "--widths", "4,8", "--stem-widths", "4", "--stages", "2",
               "--max-repeats", "1", "--seed", "0"]


def _count_fsyncs(monkeypatch, args) -> int:
    """Run ``dnas *args`` in this process and count its fsyncs (the possible kill points)."""
    n = [0]
    real = os.fsync

    def counting(fd):
        n[0] += 1
        return real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    assert main([str(a) for a in args]) == 0
    monkeypatch.setattr(os, "fsync", real)
    return n[0]


def _killed_at(k: int, args, cwd: Path) -> int:
    env = {**os.environ, "DNAS_KILL_AT": str(k), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", KILLER, *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True,
                       timeout=600)
    return p.returncode


def _resume(out: Path, fresh_args, resume_args) -> None:
    """Continue a killed run: --resume when it got as far as its config, else start it again
    (a start killed before config.yaml leaves only bookkeeping, which --out may reuse)."""
    args = resume_args if (out / "config.yaml").exists() else fresh_args
    assert main([str(a) for a in args]) == 0, args
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")], "stray temporaries survived the resume"
    assert not (out / ".lock").exists()


def _kill_points(total: int, n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return sorted(rng.sample(range(1, total + 1), min(n, total)))


def _result_without_time(run: Path) -> dict:
    d = json.loads((run / "result.json").read_text())
    d.pop("seconds", None)
    d.pop("search_seconds", None)
    return d


@pytest.mark.parametrize("strategy", ["random", "evolution", "bohb"])
def test_tabular_search_killed_anywhere_resumes_bitwise(strategy, tmp_path, monkeypatch):
    args = ["search", "--space", "nb201", "--strategy", strategy, "--evaluator", TABLE, "--budget", "12", "--seed", "3", "-q"]
    ref = tmp_path / "ref"
    total = _count_fsyncs(monkeypatch, [*args, "--out", ref])
    for k in _kill_points(total, 2, seed=len(strategy)):
        out = tmp_path / f"k{k}"
        assert _killed_at(k, [*args, "--out", out], tmp_path) == -signal.SIGKILL
        _resume(out, [*args, "--out", out], ["search", "--resume", out, "-q"])
        assert _result_without_time(out) == _result_without_time(ref), k
        queries = [e for e in map(json.loads, (out / "events.jsonl").read_text().splitlines()) if e["event"] == "query"]
        assert [q["query"] for q in queries] == list(range(1, 13)), k  # each query logged once


@pytest.mark.parametrize("relaxation", ["darts", "gdas", "msg", "topo"])
def test_search_killed_anywhere_resumes_bitwise(relaxation, tmp_path, monkeypatch):
    args = ["search", *TINY_SEARCH, "--relaxation", relaxation, "-q"]
    ref = tmp_path / "ref"
    total = _count_fsyncs(monkeypatch, [*args, "--out", ref])
    (k,) = _kill_points(total, 1, seed=len(relaxation))
    out = tmp_path / "killed"
    assert _killed_at(k, [*args, "--out", out], tmp_path) == -signal.SIGKILL
    _resume(out, [*args, "--out", out], ["search", "--resume", out, "-q"])
    assert json.loads((out / "genotype.json").read_text())["normal"] == json.loads((ref / "genotype.json").read_text())["normal"]
    a = torch.load(ref / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a), k
    epochs = [e["epoch"] for e in map(json.loads, (out / "events.jsonl").read_text().splitlines()) if e["event"] == "epoch"]
    assert epochs == [0, 1, 2], k


def test_train_killed_anywhere_resumes_bitwise(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    total = _count_fsyncs(monkeypatch, ["train", *TINY_TRAIN, "--out", ref, "-q"])
    for k in _kill_points(total, 2, seed=1):
        out = tmp_path / f"k{k}"
        assert _killed_at(k, ["train", *TINY_TRAIN, "--out", out, "-q"], tmp_path) == -signal.SIGKILL
        _resume(out, ["train", *TINY_TRAIN, "--out", out, "-q"], ["train", "--resume", out, "-q"])
        a = torch.load(ref / "model.pt", weights_only=True)["state_dict"]
        b = torch.load(out / "model.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(a[n], b[n]) for n in a), k
        assert json.loads((out / "result.json").read_text())["test_accuracy"] == json.loads((ref / "result.json").read_text())["test_accuracy"]


def test_evolve_killed_anywhere_resumes_to_the_same_front(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    total = _count_fsyncs(monkeypatch, ["evolve", *TINY_EVOLVE, "--out", ref, "-q"])
    for k in _kill_points(total, 2, seed=2):
        out = tmp_path / f"k{k}"
        assert _killed_at(k, ["evolve", *TINY_EVOLVE, "--out", out, "-q"], tmp_path) == -signal.SIGKILL
        _resume(out, ["evolve", *TINY_EVOLVE, "--out", out, "-q"], ["evolve", "--resume", out, "-q"])
        key = lambda run: [(m["key"], m["objectives"]) for m in json.loads((run / "pareto.json").read_text())["members"]]
        assert key(out) == key(ref), k
    shutil.rmtree(ref)
