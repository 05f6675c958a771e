"""The fast edge path (dnas.relax.fused) computes what the plain path computes.

Two supernets with the same weights, one on the fast path and one on the plain path, see the
same batches under the same random state; their losses, logits, weight gradients, architecture
gradients and BatchNorm running statistics must agree to float tolerance, for every
relaxation. Then the pieces around it: the collapse guard's Hessian (double backward, which
switches to the plain path), eval forwards, and a tiny real search with ``fast`` on and off."""
import copy
import itertools

import pytest
import torch

import dnas
from dnas.config import make_config
from dnas.relax.base import SharedReluOps
from dnas.relax.fused import CHANNELS_LAST_MIN_CHANNELS, plain_path, set_fast_path, work_format_for
from dnas.ops import DARTS_PRIMITIVES
from dnas.guard import hessian_eigenvalue
from dnas.strategies.bilevel import build_supernet

#: (relaxation, extra config): every built-in relaxation of the DARTS cell space.
RELAXATIONS = [("darts", {}), ("pc", {}), ("gdas", {}), ("msg", {}), ("topo", {}), ("topo", {"topo_ops": "pc"}),
               ("fbnetv2", {}), ("darts", {"space": "nb201"}), ("pc", {"space": "nb201"}),
               # 16 channels: the edges run in channels_last (dnas.relax.fused.work_format_for)
               ("darts", {"init_channels": 16}), ("pc", {"init_channels": 64})]


def _pair(relax: str, extra: dict, **kw):
    cfg = make_config(overrides={**dict(relaxation=relax, init_channels=8, layers=3, image_size=None, fast=True, **kw), **extra})
    torch.manual_seed(0)
    fast = build_supernet(cfg, 10, 1)
    plain = copy.deepcopy(fast)
    assert set_fast_path(plain, False) > 0
    return fast, plain


def _step(model, x, y):
    """One architecture-loss backward and one weight-loss backward (the two halves of a search
    iteration), under a fixed random state; returns everything the step produced."""
    torch.manual_seed(5)
    arch = model.arch_parameters()
    ga = torch.autograd.grad(model.relax.arch_loss(model, x, y), arch, allow_unused=True)
    torch.manual_seed(6)
    loss, logits = model.relax.weight_loss(model, x, y)
    weights = model.weights()
    gw = torch.autograd.grad(loss, weights, allow_unused=True)
    return loss.detach(), logits.detach(), ga, gw, [b.clone() for b in model.buffers()]


def _close(a, b, what):
    if a is None or b is None:
        assert a is None and b is None, what
        return
    scale = max(float(b.abs().max()), 1e-3)
    err = float((a - b).abs().max())
    assert err <= 1e-4 * scale + 1e-6, f"{what}: max |fast - plain| = {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("relax,extra", RELAXATIONS, ids=[r + "".join(f"-{v}" for v in e.values()) for r, e in RELAXATIONS])
def test_fast_path_matches_plain_path_values_and_gradients(relax, extra):
    fast, plain = _pair(relax, extra)
    g = torch.Generator().manual_seed(1)
    size = 8 if extra.get("space") == "nb201" else 10  # odd maps (10 -> 5 -> 3) in the DARTS cell
    x, y = torch.randn(8, 1, size, size, generator=g), torch.randint(0, 10, (8,), generator=g)
    rf, rp = _step(fast, x, y), _step(plain, x, y)
    _close(rf[0], rp[0], "loss")
    _close(rf[1], rp[1], "logits")
    for n, (a, b) in enumerate(zip(rf[2], rp[2])):
        _close(a, b, f"arch grad {n}")
    names = [n for n, _ in plain.named_weights()]
    assert sum(a is not None for a in rf[3]) > 0
    for n, a, b in zip(names, rf[3], rp[3]):
        _close(a, b, f"weight grad {n}")
    for n, (a, b) in enumerate(zip(rf[4], rp[4])):
        _close(a.float(), b.float(), f"buffer {n}")


def test_every_darts_candidate_and_both_strides_match_on_one_edge():
    """One edge of each stride, every op weighted, channels_last input too, narrow and wide
    edges (the two work formats): values, the input gradient, the op-weight gradient, every
    parameter's gradient and the BatchNorm running statistics agree."""
    torch.manual_seed(0)
    for stride, cl, C in itertools.product((1, 2), (False, True), (8, CHANNELS_LAST_MIN_CHANNELS)):
        plain = SharedReluOps(C, stride, DARTS_PRIMITIVES)
        fast = copy.deepcopy(plain)
        fast.fast = True
        x0 = torch.randn(4, C, 9, 9)
        if cl:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        wide = C >= CHANNELS_LAST_MIN_CHANNELS
        assert (work_format_for(x0) == torch.channels_last) == (wide or cl)
        w0 = torch.randn(len(DARTS_PRIMITIVES))
        out = []
        for m in (plain, fast):
            x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
            yv = m.weighted_sum(x, w)
            grads = torch.autograd.grad((yv * yv.detach().cos()).sum(), [x, w, *m.parameters()])
            out.append((yv.detach(), grads, [b.clone() for b in m.buffers()]))
        what = f"stride {stride} cl {cl} C {C}"
        assert out[1][0].is_contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format), what
        _close(out[1][0], out[0][0], f"edge output {what}")
        for n, (a, b) in enumerate(zip(out[1][1], out[0][1])):
            _close(a, b, f"edge grad {n} {what}")
        for n, (a, b) in enumerate(zip(out[1][2], out[0][2])):
            _close(a.float(), b.float(), f"buffer {n} {what}")


def test_guard_hessian_and_eval_forward_are_unchanged_by_the_fast_path():
    fast, plain = _pair("darts", {})
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(8, 1, 10, 10, generator=g), torch.randint(0, 10, (8,), generator=g)
    e_fast, e_plain = hessian_eigenvalue(fast, x, y, iters=2), hessian_eigenvalue(plain, x, y, iters=2)
    assert e_fast == pytest.approx(e_plain, rel=1e-4, abs=1e-7)
    with plain_path(fast):
        assert not any(getattr(m, "fast", False) for m in fast.modules())
    assert any(getattr(m, "fast", False) for m in fast.modules())  # restored
    fast.eval(), plain.eval()
    with torch.inference_mode():
        _close(fast(x), plain(x), "eval logits")


def test_search_with_fast_path_on_and_off_learns_the_same_architecture(tmp_path):
    """A real (tiny) search on digits: the architecture logits after the search agree."""
    tiny = dict(data="digits", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=120, epochs=2,
                warmup_epochs=0, threads=1, guard="off", seed=3)
    on = dnas.search(out=tmp_path / "on", **tiny)
    off = dnas.search(out=tmp_path / "off", fast=False, **tiny)
    assert set(on.arch) == set(off.arch)
    for name in on.arch:
        _close(on.arch[name], off.arch[name], f"searched {name}")
    assert on.genotype == off.genotype


def test_cli_fast_and_channels_last_flags_reach_the_config(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "fast"
    p = subprocess.run([sys.executable, "-m", "dnas", "search", "--fast", "--channels-last", "--data", "digits", "--image-size", "8",
                        "--init-channels", "16", "--layers", "3", "--batch-size", "32", "--max-samples", "60",
                        "--epochs", "1", "--warmup-epochs", "0", "--guard", "off", "--threads", "1", "--quiet",
                        "--out", str(out)],
                       capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
                                                            "PYTHONPATH": str(Path(dnas.__file__).parents[1])})
    assert p.returncode == 0, p.stderr
    text = (out / "config.yaml").read_text()
    assert "fast: true" in text and "channels_last: true" in text
