"""Collapse guard: measurements (parameter-free share, Hessian eigenvalue against the exact
Hessian), the stop rules on synthetic histories, and real tiny searches where the architecture
is forced toward skip-connects (the guard stops) or away from them (it does not)."""
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import dnas
from dnas.config import make_config
from dnas.genotype import PUBLISHED, Genotype
from dnas.guard import (CollapseGuard, eigen_rule, hessian_eigenvalue, param_free_share, rank_rule, skip_count,
                        skip_rule)
from dnas.ops import DARTS_PRIMITIVES
from dnas.strategies.terms import ARCH_TERMS

TINY = dict(data="digits", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=200, epochs=3,
            warmup_epochs=1, threads=1, relaxation="pc", partial_k=2)


def test_param_free_share_and_skip_count_on_published_genotypes():
    g = PUBLISHED["DARTS_V2"]
    ops = [o for o, _ in g.normal + g.reduce]
    free = {"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"}
    assert param_free_share(g) == pytest.approx(sum(o in free for o in ops) / 16)
    assert skip_count(g) == sum(o == "skip_connect" for o, _ in g.normal)
    collapsed = Genotype([("skip_connect", 0), ("skip_connect", 1)] * 4, [2, 3, 4, 5], list(g.reduce), [2, 3, 4, 5])
    assert skip_count(collapsed) == 8 and param_free_share(collapsed) > param_free_share(g)


class _Toy(nn.Module):
    """A softmax-mixed toy 'supernet': two architecture tensors and a BatchNorm buffer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.alpha = nn.Parameter(torch.randn(3, 4))
        self.beta = nn.Parameter(torch.randn(5))
        self.lin = nn.ModuleList(nn.Linear(6, 6) for _ in range(4))
        self.bn = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 5)

    def arch_parameters(self):
        return [self.alpha, self.beta]

    def forward(self, x):
        for row in F.softmax(self.alpha, -1):
            x = torch.tanh(self.bn(sum(w * l(x) for w, l in zip(row, self.lin))))
        return self.head(x) * F.softmax(self.beta, -1)


def test_power_iteration_finds_the_dominant_eigenvalue_without_side_effects():
    m = _Toy().double()
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.arange(16) % 5
    flat = torch.cat([p.detach().flatten() for p in m.arch_parameters()])

    def loss_of(v):
        a, b = v[:12].view(3, 4), v[12:]
        return F.cross_entropy(torch.func.functional_call(m, {"alpha": a, "beta": b}, (x,)), y)

    buffers = {n: b.clone() for n, b in m.named_buffers()}
    rng = torch.get_rng_state()
    H = torch.autograd.functional.hessian(loss_of, flat)
    for n, b in m.named_buffers():  # the reference Hessian itself updated BN stats: reset them
        b.copy_(buffers[n])
    ev = torch.linalg.eigvalsh(H)
    dominant = ev[ev.abs().argmax()].item()
    est = hessian_eigenvalue(m, x, y, iters=100)
    assert est == pytest.approx(dominant, rel=1e-3)
    assert all(torch.equal(b, buffers[n]) for n, b in m.named_buffers())  # BN statistics restored
    assert torch.equal(torch.get_rng_state(), rng)  # the search's random stream is untouched
    assert all(p.grad is None for p in m.parameters())


def test_eigenvalue_rule_fires_on_growth_and_returns_the_earlier_epoch():
    epochs = list(range(10))
    flat = [1.0 + 0.01 * i for i in epochs]
    kw = dict(ratio=1.3, lag=4, window=3, first=1)
    assert all(eigen_rule(flat[: i + 1], epochs[: i + 1], **kw) is None for i in epochs)
    rising = [1.0] * 6 + [1.5, 2.0, 3.0, 4.0]
    fired = [eigen_rule(rising[: i + 1], epochs[: i + 1], **kw) for i in epochs]
    first = next(i for i, f in enumerate(fired) if f)
    # epoch 7: mean(1, 1.5, 2) = 1.5 vs mean at epoch 3 = 1.0 -> 1.5 > 1.3
    assert first == 7 and fired[7]["chosen_epoch"] == 3 and fired[7]["rule"] == "eigenvalue"
    # the compared window must lie after the warm-up, and a negative reference never fires
    assert eigen_rule(rising[:8], epochs[:8], ratio=1.3, lag=4, window=3, first=2) is None
    assert eigen_rule([-1.0] * 4 + [5.0] * 4, list(range(8)), ratio=1.3, lag=4, window=1, first=0) is None


def test_darts_plus_rules():
    assert skip_rule(2, 3, max_skip=2, first=1)["chosen_epoch"] == 3
    assert skip_rule(1, 3, max_skip=2, first=1) is None and skip_rule(3, 0, max_skip=2, first=1) is None
    sigs = ["a", "b", "c", "c", "c", "c"]
    assert rank_rule(sigs, list(range(6)), patience=3, first=0)["chosen_epoch"] == 5
    assert rank_rule(sigs[:5], list(range(5)), patience=3, first=0) is None
    assert rank_rule(["c"] * 4, list(range(4)), patience=3, first=1) is None  # warm-up epochs do not count


def test_guard_decision_is_read_back_from_history():
    cfg = make_config(overrides=dict(guard="stop", guard_max_skip=2, warmup_epochs=0))
    guard = CollapseGuard(cfg)
    hist = [{"epoch": 0, "guard": {"skip_normal": 1, "hessian_eig": 1.0, "rank_sig": "a"}}]
    assert guard.decide(hist) is None
    hist.append({"epoch": 1, "guard": {"skip_normal": 3, "hessian_eig": 1.0, "rank_sig": "b"}})
    d = guard.decide(hist)
    assert d["rule"] == "skip_connect" and d["chosen_epoch"] == 1
    hist[-1]["guard"]["alarm"] = d
    assert guard.stop_decision(hist) == d
    assert CollapseGuard(make_config(overrides=dict(guard="log"))).stop_decision(hist) is None


# ----------------------------------------------------------------------------- real searches

_PUSH = {"toward": None}


@pytest.fixture
def push_term():
    """An architecture-objective term that drives the normal cell's op logits toward one op."""

    def factory(cfg, model):
        if _PUSH["toward"] is None:
            return None
        k = DARTS_PRIMITIVES.index(_PUSH["toward"])
        return lambda m: -50.0 * F.log_softmax(m.alpha_normal, -1)[:, k].mean()

    ARCH_TERMS.register("test_push", factory, overwrite=True)
    yield _PUSH
    _PUSH["toward"] = None
    ARCH_TERMS._items.pop("test_push", None)


def _events(run_dir):
    return [json.loads(l) for l in (run_dir / "events.jsonl").read_text().splitlines()]


def test_guard_stops_a_collapsing_search_and_not_a_healthy_one(tmp_path, push_term):
    cfg = dict(TINY, guard="stop", guard_hessian_iters=1, arch_lr=0.05)
    push_term["toward"] = "skip_connect"
    res = dnas.search(out=tmp_path / "collapse", **cfg)
    ev = _events(res.run_dir)
    epochs = [e for e in ev if e["event"] == "epoch"]
    stop = [e for e in ev if e["event"] == "guard_stop"]
    assert [e["epoch"] for e in epochs] == [0, 1]  # stopped after the first searched epoch
    assert len(stop) == 1 and stop[0]["rule"] == "skip_connect" and stop[0]["chosen_epoch"] == 1
    assert epochs[1]["guard"]["skip_normal"] >= 2 and epochs[1]["guard"]["param_free_share"] >= 0.25
    assert res.genotype == Genotype.from_dict(epochs[1]["genotype"])
    saved = json.loads((res.run_dir / "genotype.json").read_text())
    assert saved["meta"]["guard_stop"]["rule"] == "skip_connect"
    assert json.loads((res.run_dir / "result.json").read_text())["guard_stop"]["chosen_epoch"] == 1
    # resuming a stopped run does not continue it
    again = dnas.search(resume=res.run_dir)
    assert again.genotype == res.genotype
    assert [e["epoch"] for e in _events(res.run_dir) if e["event"] == "epoch"] == [0, 1]

    push_term["toward"] = "sep_conv_3x3"
    healthy = dnas.search(out=tmp_path / "healthy", **cfg)
    ev = _events(healthy.run_dir)
    assert [e["epoch"] for e in ev if e["event"] == "epoch"] == [0, 1, 2]
    assert not [e for e in ev if e["event"] == "guard_stop"]
    assert all(e["guard"]["skip_normal"] == 0 and e["guard"]["alarm"] is None for e in ev if e["event"] == "epoch" and e["epoch"] > 0)


def test_log_mode_records_the_alarm_but_runs_every_epoch(tmp_path, push_term):
    push_term["toward"] = "skip_connect"
    res = dnas.search(out=tmp_path / "log", **dict(TINY, epochs=2, guard="log", guard_hessian_iters=0, arch_lr=0.05))
    ev = _events(res.run_dir)
    epochs = [e for e in ev if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [0, 1] and not [e for e in ev if e["event"] == "guard_stop"]
    assert epochs[1]["guard"]["alarm"]["rule"] == "skip_connect" and epochs[1]["guard"]["hessian_eig"] is None
