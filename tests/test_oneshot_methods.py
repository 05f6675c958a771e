"""The one-shot methods researchers compare against (DrNAS, SNAS, FairDARTS, beta-DARTS, DARTS-,
SDARTS-RS/ADV, SPOS/RSPS, ProxylessNAS, DARTS-PT): each method's defining mechanism, a tiny
real search on digits on the DARTS and NB201 spaces, and exact resume after an interruption."""
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import dnas
from dnas.config import make_config
from dnas.errors import ConfigError
from dnas.genotype import Genotype
from dnas.relax import node_slices
from dnas.run import RunDir
from dnas.spaces.base import get_space
from dnas.spaces.nb201 import NB201_OPS, NB201Arch
from dnas.strategies.bilevel import Architect, build_supernet

NB = dict(data="digits", space="nb201", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=160,
          epochs=2, warmup_epochs=0, threads=1, guard="off")
# DARTS space kept small for a loaded CPU: 2 nodes per cell, 4 candidates, 3 cells (one of each kind).
DA = dict(NB, space="darts", steps=2, multiplier=2, primitives=["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"])
SPOS_FAST = dict(oneshot_population=4, oneshot_iterations=2, oneshot_topk=2, oneshot_bn_batches=1, oneshot_samples=6)
METHODS = {  # CLI name -> config for a tiny run
    "drnas": dict(relaxation="drnas"),
    "snas": dict(relaxation="snas"),
    "fairdarts": dict(relaxation="fairdarts"),
    "beta-darts": dict(relaxation="beta-darts"),
    "darts-minus": dict(relaxation="darts-minus"),
    "sdarts-rs": dict(relaxation="sdarts-rs"),
    "sdarts-adv": dict(relaxation="sdarts-adv", sdarts_steps=2),
    "spos": dict(relaxation="spos", **SPOS_FAST),
    "rsps": dict(relaxation="spos", selection="random", **SPOS_FAST),
    "proxyless": dict(relaxation="proxyless"),
    "darts-pt": dict(relaxation="gdas", selection="darts-pt", pt_tune_epochs=1, pt_eval_batches=1),
}


def _net(space: str, relaxation: str, **kw):
    torch.manual_seed(0)
    cfg = make_config(overrides=dict(NB if space == "nb201" else DA, relaxation=relaxation, **kw))
    return build_supernet(cfg, 10, 1), cfg


def _data(n=32):
    from dnas.data import load_dataset

    d = load_dataset("digits", image_size=8)
    return d.x[:n], d.y[:n], d.x[n : 2 * n], d.y[n : 2 * n]


def _op_calls(cell_edges) -> list[list[int]]:
    """Forward hooks counting how often each candidate op of each edge ran."""
    counts = [[0] * len(e.ops.ops) for e in cell_edges]
    for k, edge in enumerate(cell_edges):
        for i, op in enumerate(edge.ops.ops):
            target = op[-1] if isinstance(op, nn.Sequential) else op

            def hook(*_, k=k, i=i):
                counts[k][i] += 1

            target.register_forward_hook(hook)
    return counts


# ----------------------------------------------------------------------------- DrNAS


def test_drnas_samples_lie_on_the_simplex_and_the_gradient_reaches_the_concentration():
    net, _ = _net("nb201", "drnas")
    torch.manual_seed(1)
    w = net.relax.op_weights(net.alpha, training=True)
    assert torch.all(w > 0) and torch.allclose(w.sum(-1), torch.ones(6), atol=1e-5)
    w2 = net.relax.op_weights(net.alpha, training=True)
    assert not torch.allclose(w, w2)  # a fresh Dirichlet draw each forward
    target = torch.zeros_like(w)
    target[:, 2] = 1.0
    (g,) = torch.autograd.grad((w * target).sum(), net.alpha)  # pathwise gradient through rsample
    assert g.abs().sum() > 0 and torch.isfinite(g).all()
    # eval mode: the Dirichlet mean; the KL anchor is 0 at concentration 1 and grows away from it
    beta = F.elu(net.alpha) + 1
    assert torch.allclose(net.relax.op_weights(net.alpha, training=False), beta / beta.sum(-1, keepdim=True))
    with torch.no_grad():
        net.alpha.zero_()
    assert net.relax.arch_term(net).abs() < 1e-6
    with torch.no_grad():
        net.alpha[:, 0] = 2.0
    kl = net.relax.arch_term(net)
    assert kl > 0
    (gk,) = torch.autograd.grad(kl, net.alpha)
    assert gk[:, 0].min() > 0  # descending the anchor pulls the concentration back


def test_drnas_partial_channels_use_edge_normalisation():
    net, _ = _net("nb201", "drnas", drnas_partial_k=2)
    assert net.beta is not None and type(net.layers[0].edges[0]).__name__ == "PartialMixedOp"
    with pytest.raises(ConfigError, match="drnas_partial_k"):
        _net("nb201", "drnas", drnas_partial_k=3)


# ----------------------------------------------------------------------------- SNAS


def test_snas_soft_samples_run_every_op_and_anneal_the_temperature():
    net, _ = _net("nb201", "snas")
    calls = _op_calls(net.layers[0].edges)
    torch.manual_seed(2)
    w = net.relax.op_weights(net.alpha, training=True)
    assert torch.allclose(w.sum(-1), torch.ones(6), atol=1e-5) and (w > 0).all()
    assert not torch.equal(w, F.one_hot(w.argmax(-1), 5).float())  # soft, unlike GDAS
    net(torch.randn(2, 1, 8, 8))
    assert all(c[i] == 1 for c in calls for i, p in enumerate(NB201_OPS) if p != "none")
    net.relax.on_epoch(0, 5)
    assert net.relax.tau == 1.0
    net.relax.on_epoch(4, 5)
    assert net.relax.tau == pytest.approx(0.33)


# ----------------------------------------------------------------------------- FairDARTS


def test_fairdarts_weights_are_independent_sigmoids_and_zero_one_pushes_to_the_ends():
    net, _ = _net("nb201", "fairdarts")
    with torch.no_grad():
        net.alpha.normal_()
    w = net.relax.op_weights(net.alpha, training=True)
    assert torch.allclose(w, torch.sigmoid(net.alpha))
    with torch.no_grad():
        net.alpha[0, 1] += 3.0  # raising one op leaves the others' weights unchanged
    w2 = net.relax.op_weights(net.alpha, training=True)
    assert torch.equal(w2[0, [0, 2, 3, 4]], w[0, [0, 2, 3, 4]]) and w2[0, 1] > w[0, 1]
    loss = net.relax.arch_term(net)
    s = torch.sigmoid(net.alpha)
    assert loss.item() == pytest.approx(10 * -((s - 0.5) ** 2).mean().item(), rel=1e-5)
    (g,) = torch.autograd.grad(loss, net.alpha)
    # gradient descent moves weights above 0.5 up and below 0.5 down
    assert torch.all((-g)[s > 0.5] >= 0) and torch.all((-g)[s < 0.5] <= 0)


# ----------------------------------------------------------------------------- beta-DARTS


def test_beta_decay_is_the_mean_logsumexp_with_a_linear_ramp():
    net, _ = _net("nb201", "beta-darts", beta_lambda=0.5)
    net.relax.on_epoch(0, 3)
    assert net.relax.arch_term(net) is None  # weight 0 at the first epoch
    net.relax.on_epoch(2, 3)
    with torch.no_grad():
        net.alpha.normal_()
    term = net.relax.arch_term(net)
    assert term.item() == pytest.approx(0.5 * torch.logsumexp(net.alpha, -1).mean().item(), rel=1e-6)
    (g,) = torch.autograd.grad(term, net.alpha)
    assert torch.allclose(g, 0.5 * F.softmax(net.alpha, -1) / 6, atol=1e-7)  # strongest ops decay most
    net.relax.load_state(dict(net.relax.state()))
    assert net.relax.weight == 0.5


# ----------------------------------------------------------------------------- DARTS-


def test_darts_minus_adds_a_decaying_auxiliary_skip():
    net, _ = _net("darts", "darts-minus")
    cell = net.cells[0]
    x = torch.randn(2, 4, 8, 8)
    w = F.softmax(net.alpha_normal, -1)[0]
    edge = cell.edges[0]
    net.relax.on_epoch(0, 3)
    assert net.relax.beta == 1.0
    out1 = edge(x, w)
    net.relax.on_epoch(2, 3)
    assert net.relax.beta == 0.0
    out0 = edge(x, w)
    assert torch.allclose(out1 - out0, x, atol=1e-5)  # stride 1: identity auxiliary path
    red = [c for c in net.cells if c.reduction][0]
    assert type(red.edges[0].aux).__name__ == "FactorizedReduce"


# ----------------------------------------------------------------------------- SDARTS


def test_sdarts_rs_perturbs_inside_the_ball_on_the_simplex_without_touching_alpha():
    net, _ = _net("nb201", "sdarts-rs")
    net.relax.on_epoch(1, 2)
    eps = net.relax.epsilon
    assert eps == pytest.approx(0.03 + (0.3 - 0.03) / 2)
    before = net.alpha.detach().clone()
    xt, yt, _, _ = _data()
    seen = {}
    real = net.relax.forward_op_weights

    def spy(alpha, training):
        seen["w"] = real(alpha, training=training)
        return seen["w"]

    net.relax.forward_op_weights = spy
    with net.relax.weight_scope(net, xt, yt):
        net(xt)
    p = F.softmax(net.alpha, -1).detach()
    w = seen["w"]
    assert not torch.allclose(w, p)
    assert torch.allclose(w.sum(-1), torch.ones(6), atol=1e-5) and (w >= 0).all()
    assert (w - p).abs().max() <= 2 * eps + 1e-6  # within the ball, up to the renormalisation
    assert torch.equal(net.alpha.detach(), before)


def test_sdarts_adv_perturbation_increases_the_training_loss():
    net, _ = _net("nb201", "sdarts-adv", sdarts_steps=3)
    xt, yt, _, _ = _data()
    net.relax.on_epoch(1, 2)
    with net.relax.weight_scope(net, xt, yt):
        pass
    before, after = net.relax.last_losses
    assert after > before  # the attack found a worse architecture distribution in the ball


# ----------------------------------------------------------------------------- SPOS / RSPS


def test_spos_trains_exactly_one_sampled_path_per_step():
    net, _ = _net("darts", "spos")
    calls = _op_calls(net.cells[0].edges)
    xt, yt, _, _ = _data(8)
    torch.manual_seed(3)
    net.relax.weight_loss(net, xt, yt)
    arch = net.relax.last_arch
    get_space("darts", primitives=DA["primitives"], steps=2).validate(arch)
    prims = DA["primitives"]
    starts = [s.start for s in node_slices(2)]
    kept = {starts[i] + j: prims.index(op) for i in range(2) for op, j in arch.normal[2 * i : 2 * i + 2]}
    for e, c in enumerate(calls):
        assert c == [1 if kept.get(e) == i else 0 for i in range(len(prims))], (e, c)
    assert not net.relax.needs_arch_step and net.relax.default_selection == "evolution"


def test_spos_search_takes_no_architecture_step(tmp_path):
    res = dnas.search(out=tmp_path / "s", **dict(NB, **METHODS["spos"]), progress=False)
    ev = [json.loads(l) for l in (res.run_dir / "events.jsonl").read_text().splitlines()]
    assert all(e["arch_loss"] is None for e in ev if e["event"] == "epoch")
    sel = [e for e in ev if e["event"] == "selection"][0]
    assert sel["name"] == "evolution" and sel["evaluated"] >= 4 and len(sel["best_per_iteration"]) == 2
    assert res.genotype.meta["method"] == "bilevel/spos+evolution"


# ----------------------------------------------------------------------------- ProxylessNAS


def test_proxyless_weight_step_one_path_arch_step_two_paths_and_rescaling():
    net, cfg = _net("nb201", "proxyless")
    calls = _op_calls(net.layers[0].edges)
    xt, yt, xv, yv = _data(8)
    torch.manual_seed(4)
    net.relax.weight_loss(net, xt, yt)
    assert all(sum(c) <= 1 for c in calls)  # one path per edge (none computes nothing)
    for c in calls:
        c[:] = [0] * len(c)
    with torch.no_grad():
        net.alpha.normal_()
    before = net.alpha.detach().clone()
    arch = Architect(net, cfg)
    arch.optimizer = torch.optim.SGD([net.alpha], lr=0.5)
    torch.manual_seed(5)
    loss = net.relax.arch_loss(net, xv, yv)
    pairs = {k: v[1].clone() for k, v in net.relax._pairs.items()}[id(net.alpha)]
    for k, c in enumerate(calls):  # both sampled ops ran (minus `none`, which computes nothing)
        assert sum(c) == sum(1 for i in pairs[k].tolist() if NB201_OPS[i] != "none")
    (g,) = torch.autograd.grad(loss, net.alpha)
    mask = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, pairs, True)
    assert g[~mask].abs().max() == 0 and g[mask].abs().sum() > 0  # only the two sampled logits
    net.alpha.grad = g
    arch.optimizer.step()
    net.relax.after_arch_step(net)
    after = net.alpha.detach()
    assert torch.equal(after[~mask], before[~mask])
    assert torch.allclose(after.gather(-1, pairs).logsumexp(-1), before.gather(-1, pairs).logsumexp(-1), atol=1e-5)
    assert not torch.allclose(after, before)


def test_proxyless_latency_term_goes_through_the_cost_model():
    net, cfg = _net("darts", "proxyless", cost_objective="params", cost_lambda=1.0)
    arch = Architect(net, cfg)
    assert "cost" in arch.terms and arch.terms["cost"](net) > 0


# ----------------------------------------------------------------------------- DARTS-PT


def test_darts_pt_removes_ops_by_measured_accuracy_drop(tmp_path):
    from dnas.selection.base import cached_batches, evaluate
    from dnas.selection.darts_pt import _without, forward_distribution
    from dnas.searchdata import search_batches

    cfg_kw = dict(NB, relaxation="darts", selection="darts-pt", pt_tune_epochs=0, epochs=1, max_samples=200)
    res = dnas.search(out=tmp_path / "pt", **cfg_kw, progress=False)
    ev = [json.loads(l) for l in (res.run_dir / "events.jsonl").read_text().splitlines()]
    sel = [e for e in ev if e["event"] == "selection"][0]
    assert sel["name"] == "darts-pt" and len(sel["ops"]) == 6 and sel["topology"] == []
    for d in sel["ops"]:  # each edge keeps the op whose removal hurt accuracy most (loss breaks ties)
        accs, losses = d["acc_without"], d["loss_without"]
        best = min(accs, key=lambda o: (accs[o], -losses[o], NB201_OPS.index(o)))
        assert d["op"] == best
    assert list(res.genotype.ops) == [d["op"] for d in sorted(sel["ops"], key=lambda d: d["edge"])]
    # the logged accuracies are real measurements: recompute the first decision from the checkpoint
    cfg = make_config(overrides=cfg_kw)
    model = build_supernet(cfg, 10, 1)
    model.load_state_dict(torch.load(res.run_dir / "checkpoint.pt", weights_only=True)["model"])
    _, val_b, _, _ = search_batches(cfg)
    val = cached_batches(val_b, "cpu", cfg.epochs)
    W = forward_distribution(model)
    first = sel["ops"][0]
    for o, acc in first["acc_without"].items():
        assert evaluate(model, _without(W, id(model.alpha), first["edge"], NB201_OPS.index(o)), val)[0] == pytest.approx(acc)


def test_darts_pt_on_the_darts_space_prunes_to_two_inputs(tmp_path):
    res = dnas.search(out=tmp_path / "pt", **dict(DA, **METHODS["darts-pt"], epochs=1), progress=False)
    ev = [json.loads(l) for l in (res.run_dir / "events.jsonl").read_text().splitlines()]
    sel = [e for e in ev if e["event"] == "selection"][0]
    assert len(sel["ops"]) == 10 and all(d["op"] != "none" for d in sel["ops"])
    assert len(sel["topology"]) == 2 and all(len(t["kept"]) == 2 for t in sel["topology"])  # nodes with 3 inputs
    normal = {e: d["op"] for d in sel["ops"] if d["param"] == "alpha_normal" for e in [d["edge"]]}
    node1 = [t for t in sel["topology"] if t["param"] == "alpha_normal"][0]
    assert sorted(j for _, j in res.genotype.normal[2:4]) == [r - 2 for r in node1["kept"]]
    assert [op for op, j in sorted(res.genotype.normal[2:4], key=lambda e: e[1])] == [normal[r] for r in node1["kept"]]


# ----------------------------------------------------------------------------- real searches on both spaces


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("space", ["darts", "nb201"])
def test_tiny_real_search(tmp_path, method, space):
    base = NB if space == "nb201" else DA
    res = dnas.search(out=tmp_path / "r", **dict(base, **METHODS[method], epochs=1), progress=False)
    sp = get_space(space, **({"primitives": DA["primitives"], "steps": 2} if space == "darts" else {}))
    saved = sp.validate(sp.parse(str(res.run_dir / "genotype.json")))
    assert sp.hash(saved) == sp.hash(sp.validate(res.genotype))
    ev = [json.loads(l) for l in (res.run_dir / "events.jsonl").read_text().splitlines()]
    epochs = [e for e in ev if e["event"] == "epoch"]
    assert len(epochs) == 1 and epochs[0]["train_loss"] > 0


def _cut_and_resume(tmp_path, monkeypatch, cfg):
    full = dnas.search(out=tmp_path / "full", **cfg, progress=False)
    saves = {"n": 0}
    real_save = RunDir.save_checkpoint

    class Interrupt(Exception):
        pass

    def save_then_die(self, state):
        real_save(self, state)
        saves["n"] += 1
        if saves["n"] == 1:
            raise Interrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupt):
        dnas.search(out=tmp_path / "cut", **cfg, progress=False)
    monkeypatch.setattr(RunDir, "save_checkpoint", real_save)
    assert not (tmp_path / "cut" / "genotype.json").exists()
    resumed = dnas.search(resume=tmp_path / "cut", progress=False)
    return full, resumed


@pytest.mark.parametrize("method", list(METHODS))
def test_resume_after_interruption_gives_the_same_genotype(tmp_path, monkeypatch, method):
    full, resumed = _cut_and_resume(tmp_path, monkeypatch, dict(NB, **METHODS[method]))
    assert resumed.genotype == full.genotype
    a = torch.load(full.run_dir / "checkpoint.pt", weights_only=True)
    b = torch.load(resumed.run_dir / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), "resumed run differs"
    assert a["relax"] == b["relax"]


def test_darts_space_resume_for_single_path_and_selection(tmp_path, monkeypatch):
    full, resumed = _cut_and_resume(tmp_path, monkeypatch, dict(DA, **METHODS["spos"]))
    assert isinstance(full.genotype, Genotype) and resumed.genotype == full.genotype


# ----------------------------------------------------------------------------- errors


def test_bad_options_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="selection"):
        make_config(overrides=dict(selection="nope"))
    with pytest.raises(ConfigError, match="drnas_reg"):
        make_config(overrides=dict(relaxation="drnas", drnas_reg="l1"))
    with pytest.raises(ConfigError, match="unrolled"):
        _net("nb201", "proxyless", unrolled=True)
    with pytest.raises(ConfigError, match="unrolled"):
        _net("nb201", "drnas", unrolled=True)


def test_kill_9_then_resume_cli(tmp_path):
    """A real SIGKILL mid-run (DrNAS, whose Dirichlet draws come from the checkpointed RNG)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["search", "--space", "nb201", "--relaxation", "drnas", "--data", "digits", "--image-size", "8",
            "--init-channels", "4", "--layers", "3", "--batch-size", "32", "--max-samples", "160", "--epochs", "4",
            "--warmup-epochs", "0", "--guard", "off", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = lambda *a: subprocess.Popen([sys.executable, "-m", "dnas", *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # noqa: E731
    full = run(*args, "--out", str(tmp_path / "full"))
    assert full.wait(timeout=600) == 0, full.stderr.read()
    killed = run(*args, "--out", str(tmp_path / "killed"))
    ckpt = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "genotype.json").exists(), "run finished before it could be killed"
    resumed = run("search", "--resume", str(tmp_path / "killed"), "--quiet")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    ga = json.loads((tmp_path / "full" / "genotype.json").read_text())
    gb = json.loads((tmp_path / "killed" / "genotype.json").read_text())
    ga.pop("meta", None), gb.pop("meta", None)
    assert ga == gb


@pytest.mark.parametrize("method", ["fairdarts", "sdarts-rs"])
def test_hierarchical_space_runs_the_cell_relaxations(tmp_path, method):
    hier = dict(data="digits", image_size=8, init_channels=4, batch_size=32, max_samples=128, epochs=1, warmup_epochs=0,
                threads=1, steps=2, multiplier=2, primitives=DA["primitives"], layers=5, guard="off")
    res = dnas.search(preset="hdas-cell", out=tmp_path / "h", **dict(hier, relaxation=method), progress=False)
    assert res.genotype.is_hierarchical
    with pytest.raises(ConfigError, match="relaxation: .spos. does not apply to space hierarchical"):
        dnas.search(preset="hdas-cell", out=tmp_path / "s", **dict(hier, relaxation="spos"), progress=False)


def test_cli_names_the_methods_and_the_selection(tmp_path, capsys):
    from typer.testing import CliRunner

    import dnas.commands.search  # noqa: F401
    from dnas.cli import app

    common = ["--data", "digits", "--epochs", "1", "--warmup-epochs", "0", "--init-channels", "4", "--layers", "3",
              "--image-size", "8", "--max-samples", "120", "--threads", "1", "--guard", "off", "--json"]
    out = CliRunner().invoke(app, ["search", "--space", "nb201", "--relaxation", "fairdarts", "--selection", "darts-pt",
                                   *common, "--out", str(tmp_path / "f")])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["genotype"]["meta"]["method"] == "bilevel/fairdarts+darts-pt"
    from dnas.cli import main

    assert main(["search", "--space", "nb201", "--relaxation", "sdarts-rs", "--selection", "nope", *common,
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "selection" in err[0]
