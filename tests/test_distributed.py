"""Data-parallel search on 2 CPU ranks (gloo): the ranks stay bitwise identical, the sharded
loop computes exactly the single-process global-batch step, and at an equal global batch on
real batches the search follows the single-process one within the BatchNorm difference.

What is exactly equal and what is not:

* across ranks: every weight and architecture parameter, bitwise, after every epoch
  (``rank_drift`` 0.0) and at the end (per-rank tensors compared with ``torch.equal``);
* 2 ranks on global batches ``[A; A]`` vs one process on batches ``A``: bitwise equal weights
  and architecture parameters, first and second order. Here each rank's shard is ``A``, so
  BatchNorm sees the same statistics as the single process and the averaged gradient
  ``0.5 g + 0.5 g`` is exactly ``g``: this checks the sharding, the share weights and every
  all-reduce (weights, alphas, and the unrolled step's three reductions);
* 2 ranks vs one process at the same global batch of real data: not bitwise. BatchNorm
  normalises each rank's half-batch with its own statistics, and this tiny search amplifies
  such differences (even two single-process runs that differ only in float rounding end up
  ~5e-3 apart in alpha); the test asserts the loss curves agree within a few percent and the
  architecture moves in the same direction (cosine of the alpha updates), not the genotype.
"""
import json

import pytest
import torch

import dnas
from dnas import distributed
from dnas.config import make_config
from dnas.data import Batches
from dnas.errors import ConfigError
from dnas.run import RunDir, seed_everything
from dnas.searchdata import ShardedBatches, search_batches

SMALL = dict(data="digits", image_size=8, init_channels=4, layers=3, max_samples=160, epochs=2, warmup_epochs=0,
             threads=1, guard="off", relaxation="darts")


def _events(run_dir, kind=None):
    ev = [json.loads(l) for l in (run_dir / "events.jsonl").read_text().splitlines()]
    return [e for e in ev if kind is None or e["event"] == kind]


def test_shards_partition_every_global_batch_in_order():
    x = torch.arange(70, dtype=torch.float32).view(70, 1, 1, 1)
    y = torch.arange(70)
    base = Batches(x, y, 32, shuffle=True, seed=3)
    shards = [ShardedBatches(Batches(x, y, 32, shuffle=True, seed=3), r, 3) for r in range(3)]
    for epoch in (0, 1):
        base.set_epoch(epoch)
        for s in shards:
            s.set_epoch(epoch)
        per_rank = [list(s) for s in shards]
        globals_ = list(base)
        assert all(len(p) == len(globals_) == len(s) == 3 for p, s in zip(per_rank, shards))
        for b, (xb, yb) in enumerate(globals_):
            assert torch.equal(torch.cat([p[b][1] for p in per_rank]), yb)  # same samples, same order
            sizes = [len(p[b][1]) for p in per_rank]
            assert max(sizes) - min(sizes) <= 1
    # a last batch smaller than the number of ranks is skipped by every rank
    short = ShardedBatches(Batches(x[:65], y[:65], 32, shuffle=False), 1, 3)
    assert len(short) == 2 and len(list(short)) == 2
    # each rank's share of a batch is its weight in the global gradient: the shares sum to one
    ranks = [ShardedBatches(Batches(x, y, 32, shuffle=False), r, 3) for r in range(3)]
    firsts = [next(iter(s)) for s in ranks]
    assert [len(b[1]) for b in firsts] == [11, 11, 10]
    assert sum(s.share for s in ranks) == pytest.approx(1.0)


def test_global_batch_must_cover_the_ranks():
    with pytest.raises(ConfigError, match="batch_size"):
        search_batches(make_config(overrides=dict(SMALL, batch_size=2)), rank=0, world_size=3)


# --------------------------------------------------------------------------- exactness
# Spawned ranks import this module to find these functions (tests/ is on the path they inherit).


class _Doubled:
    """Global batches [A; A]: rank 0's shard and rank 1's shard are both A."""

    def __init__(self, base):
        self.base = base

    transform = property(lambda s: s.base.transform, lambda s, v: setattr(s.base, "transform", v))

    def set_epoch(self, epoch, start_batch=0):
        self.base.set_epoch(epoch, start_batch)

    def __len__(self):
        return len(self.base)

    def __iter__(self):
        for x, y in self.base:
            yield torch.cat([x, x]), torch.cat([y, y])


def _doubled_batches(cfg, rank=0, world_size=1):
    t, v, classes, channels = search_batches(cfg.model_copy(update={"batch_size": cfg.batch_size // 2}))
    t, v = _Doubled(t), _Doubled(v)
    if world_size > 1:
        t, v = ShardedBatches(t, rank, world_size), ShardedBatches(v, rank, world_size)
    return t, v, classes, channels


def _doubled_rank(fields, run_path):
    import dnas.searchdata

    dnas.searchdata.search_batches = _doubled_batches
    from dnas.strategies.bilevel import search_rank

    out = search_rank(fields, run_path, False, False)
    out["state"] = {k: v.numpy() for k, v in torch.load(f"{run_path}/checkpoint.pt", weights_only=True)["model"].items()
                    if v.is_floating_point()} if out["rank"] == 0 else None
    return out


@pytest.mark.parametrize("unrolled", [False, True], ids=["first-order", "second-order"])
def test_two_ranks_compute_exactly_the_single_process_step(tmp_path, unrolled):
    from dnas.strategies.bilevel import run_bilevel_search

    cfg = make_config(overrides=dict(SMALL, batch_size=32, unrolled=unrolled, epochs=1, max_samples=120))
    single = run_bilevel_search(cfg.model_copy(update={"batch_size": 16}), RunDir(tmp_path / "single").create(), progress=False)
    RunDir(tmp_path / "ranks").create()
    outs = distributed.launch(2, _doubled_rank, (cfg.model_dump(mode="json"), str(tmp_path / "ranks")))
    assert [o["rank"] for o in outs] == [0, 1]
    for name, ref in single.arch.items():
        assert torch.equal(torch.from_numpy(outs[0]["arch"][name]), ref), name  # bitwise, first vs single
        assert torch.equal(torch.from_numpy(outs[1]["arch"][name]), ref), name
    ck = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)["model"]
    weights = [k for k in ck if "running" not in k and ck[k].is_floating_point()]
    assert weights and all(torch.equal(torch.from_numpy(outs[0]["state"][k]), ck[k]) for k in weights)
    assert outs[0]["genotype"] == outs[1]["genotype"] == single.genotype.to_dict(with_meta=False)
    assert all(e["rank_drift"] == 0.0 and e["world_size"] == 2 for e in _events(tmp_path / "ranks", "epoch"))


# --------------------------------------------------------------------------- the product path


PRODUCT = dict(SMALL, batch_size=32, lr=0.025, epochs=2)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return dnas.search(out=tmp_path_factory.mktemp("dp") / "two", nproc=2, **PRODUCT)


def test_two_rank_search_equals_itself_on_both_ranks_and_tracks_single_process(tmp_path, two_ranks):
    """``dnas.search(nproc=2)``: ranks bitwise equal, rank 0 alone writes, and at an equal global
    batch of real data the run tracks the single-process one (BatchNorm per half-batch)."""
    cfg = PRODUCT
    one = dnas.search(out=tmp_path / "one", **cfg)
    two = two_ranks

    # every rank ends with bitwise-equal architecture parameters and the same genotype
    assert len(two.ranks) == 2 and two.ranks[0]["arch_digest"] == two.ranks[1]["arch_digest"] == two.arch_digest
    for name in two.ranks[0]["arch"]:
        assert torch.equal(two.ranks[0]["arch"][name], two.ranks[1]["arch"][name])
    assert two.ranks[0]["genotype"] == two.ranks[1]["genotype"] == two.genotype.to_dict(with_meta=False)

    # rank 0 alone wrote: one start event, one event per epoch, the config with nproc
    run = two.run_dir
    assert len(_events(run, "start")) == 1 and _events(run, "start")[0]["world_size"] == 2
    epochs = _events(run, "epoch")
    assert [e["epoch"] for e in epochs] == [0, 1] and all(e["rank_drift"] == 0.0 for e in epochs)
    assert "nproc: 2" in (run / "config.yaml").read_text()
    ck = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    assert torch.equal(ck["alpha_normal"], two.arch["alpha_normal"])

    # versus one process at the same global batch (32): not bitwise, close
    e1, e2 = _events(tmp_path / "one", "epoch"), epochs
    for a, b in zip(e1, e2):
        assert abs(a["train_loss"] - b["train_loss"]) / a["train_loss"] < 0.05, (a["train_loss"], b["train_loss"])
    seed_everything(0)
    from dnas.strategies.bilevel import build_supernet

    init = build_supernet(make_config(overrides=cfg), 10, 1)
    for name in ("alpha_normal", "alpha_reduce"):
        d1 = (one.arch[name] - getattr(init, name).detach()).flatten()
        d2 = (two.arch[name] - getattr(init, name).detach()).flatten()
        cos = torch.nn.functional.cosine_similarity(d1, d2, dim=0).item()
        print(name, "cosine of the alpha updates", round(cos, 4), "max |diff|", (one.arch[name] - two.arch[name]).abs().max().item())
        assert cos > 0.6, (name, cos)

    # the end-of-search summary names the run directory, the genotype and the next commands
    from dnas.commands.search import search_summary

    text = search_summary(two)
    assert str(run) in text and two.genotype.hash() in text and "2 ranks" in text
    assert f"dnas train {run / 'genotype.json'}" in text and f"dnas report {run}" in text


def test_killed_two_rank_search_resumes_on_both_ranks_to_the_same_result(tmp_path, two_ranks):
    """kill -9 of the launcher and its ranks after epoch 0, then --resume: every rank loads
    rank 0's checkpoint and the run ends bitwise equal to the uninterrupted 2-rank run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(PRODUCT))
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "dnas", "search", "--config", str(tmp_path / "c.yaml"), "--nproc", "2",
                             "--out", str(run), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 300
    while not (run / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
    proc.wait()
    assert not (run / "genotype.json").exists(), "the run finished before it could be killed"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 0

    assert "nproc: 2" in (run / "config.yaml").read_text()  # the --nproc flag reached the config
    resumed = dnas.search(resume=run)  # the saved config starts 2 ranks again
    assert [e["epoch"] for e in _events(run, "epoch")] == [0, 1] and len(_events(run, "resume")) == 1
    assert resumed.ranks[0]["arch_digest"] == resumed.ranks[1]["arch_digest"] == two_ranks.arch_digest
    a = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(two_ranks.run_dir / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed 2-rank run differs from the uninterrupted one"
