"""Real (tiny) searches on the built-in digits data: determinism, resume after kill -9,
second-order gradients, divergence handling."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

import dnas
from dnas.config import make_config
from dnas.errors import ConfigError, DivergenceError
from dnas.strategies.bilevel import Architect, build_supernet

TINY = dict(data="digits", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=240, epochs=3, warmup_epochs=1, threads=1)


def _genotype(run_dir):
    return json.loads((run_dir / "genotype.json").read_text())


def test_search_same_seed_same_genotype_and_run_dir_contents(tmp_path):
    a = dnas.search(out=tmp_path / "a", relaxation="darts", **TINY)
    b = dnas.search(out=tmp_path / "b", relaxation="darts", **TINY)
    ga, gb = a.genotype, b.genotype
    assert ga == gb and ga.hash() == gb.hash()
    for name in ("config.yaml", "events.jsonl", "checkpoint.pt", "genotype.json", "result.json"):
        assert (a.run_dir / name).exists(), name
    epochs = [e for e in map(json.loads, (a.run_dir / "events.jsonl").read_text().splitlines()) if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    assert epochs[0]["arch_loss"] is None and epochs[1]["arch_loss"] is not None  # warm-up epoch
    # the architecture moved away from its initialisation once search started
    ck = torch.load(a.run_dir / "checkpoint.pt", weights_only=True)
    from dnas.run import seed_everything

    seed_everything(0)
    init = build_supernet(make_config(overrides=dict(TINY, relaxation="darts")), 10, 1).alpha_normal.detach()
    assert (ck["model"]["alpha_normal"] - init).abs().max() > 1e-3
    c = dnas.search(out=tmp_path / "c", relaxation="darts", **{**TINY, "seed": 1})
    assert not torch.equal(torch.load(c.run_dir / "checkpoint.pt", weights_only=True)["model"]["alpha_normal"], ck["model"]["alpha_normal"])


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "dnas", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_kill_9_then_resume_gives_the_same_genotype(tmp_path):
    args = ["search", "--data", "digits", "--image-size", "8", "--init-channels", "4", "--layers", "3",
            "--batch-size", "32", "--max-samples", "240", "--epochs", "4", "--warmup-epochs", "1", "--relaxation", "pc", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = _cli(*args, "--out", str(tmp_path / "full"), env=env)
    assert full.wait(timeout=600) == 0, full.stderr.read()

    killed = _cli(*args, "--out", str(tmp_path / "killed"), env=env)
    ckpt = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline:  # kill mid-run, after epoch 0's checkpoint
        time.sleep(0.05)
    time.sleep(0.3)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "genotype.json").exists(), "run finished before it could be killed"
    resumed = _cli("search", "--resume", str(tmp_path / "killed"), "--quiet", env=env)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()

    g_full, g_res = _genotype(tmp_path / "full"), _genotype(tmp_path / "killed")
    g_full.pop("meta"), g_res.pop("meta")
    assert g_full == g_res
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    events = [json.loads(l) for l in (tmp_path / "killed" / "events.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [0, 1, 2, 3]


def _batch(n=16):
    from dnas.data import load_dataset

    d = load_dataset("digits")
    return d.x[:n], d.y[:n], d.x[n : 2 * n], d.y[n : 2 * n]


def test_second_order_with_zero_step_equals_first_order():
    cfg = make_config(overrides=dict(TINY, relaxation="darts", unrolled=True))
    torch.manual_seed(0)
    net = build_supernet(cfg, 10, 1)
    xt, yt, xv, yv = _batch()
    w_opt = torch.optim.SGD(net.weights(), lr=0.1, momentum=0.9)
    arch = Architect(net, cfg)
    g2, _ = arch._unrolled_grads(xt, yt, xv, yv, 0.0, w_opt)
    g1 = torch.autograd.grad(F.cross_entropy(net(xv), yv), net.arch_parameters())
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-6)


def test_second_order_hessian_term_matches_exact_mixed_derivative():
    """The finite-difference implicit term equals the exact d2L/(dalpha dw) . v from double backprop."""
    cfg = make_config(overrides=dict(TINY, relaxation="darts", unrolled=True))
    torch.manual_seed(0)
    net = build_supernet(cfg, 10, 1).double()
    xt, yt, xv, yv = _batch(8)
    xt, xv = xt.double(), xv.double()
    w_opt = torch.optim.SGD(net.weights(), lr=0.1)
    eta = 0.05
    architect = Architect(net, cfg)
    # The reference radius (0.01/||v||) is coarse on a net this small (max-pool and ReLU kinks
    # are crossed at that scale); a small radius in float64 checks the implementation exactly.
    architect.fd_radius = 1e-6
    architect.weight_decay = 0.0
    g_fd, _ = architect._unrolled_grads(xt, yt, xv, yv, eta, w_opt)
    # exact: the full derivative of L_val(w - eta * dL_train/dw, alpha) w.r.t. alpha
    from torch.func import functional_call

    names, weights = zip(*net.named_weights())
    arch = net.arch_parameters()
    gw = torch.autograd.grad(F.cross_entropy(net(xt), yt), weights, create_graph=True)
    unrolled = {n: w - eta * g for n, w, g in zip(names, weights, gw)}
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    val = F.cross_entropy(functional_call(net, ({**unrolled, "alpha_normal": arch[0], "alpha_reduce": arch[1]}, buffers), (xv,)), yv)
    g_exact = torch.autograd.grad(val, arch)
    for a, b in zip(g_exact, g_fd):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-6), (a - b).abs().max()


def test_nan_loss_stops_with_clear_message(tmp_path):
    with pytest.raises(DivergenceError, match="loss became"):
        dnas.search(out=tmp_path / "nan", relaxation="darts", **{**TINY, "lr": 1e12, "epochs": 2})


def test_bad_config_file_is_one_line_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epochs: many\n")
    with pytest.raises(ConfigError, match="field 'epochs'"):
        dnas.search(p, out=tmp_path / "x")
    p.write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        dnas.search(p, out=tmp_path / "x")
