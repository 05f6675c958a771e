"""The second-order (unrolled) architecture step checked against autograd: the exact
Hessian-vector product, the Nesterov virtual step, and MSG-DAS unrolled over its K sub-graphs.

The reference gradients below are built independently of the Architect: the full derivative of
``L_val(w', alpha)`` with ``w'`` the optimizer's virtual step, by double backprop in float64."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import dnas
from dnas.config import make_config
from dnas.data import load_dataset
from dnas.strategies.bilevel import Architect, build_supernet

TINY = dict(data="digits", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=200, threads=1, guard="off")


def _batches(n=8):
    d = load_dataset("digits", image_size=8)
    return d.x[:n].double(), d.y[:n], d.x[n : 2 * n].double(), d.y[n : 2 * n]


def _net(**over):
    cfg = make_config(overrides=dict(TINY, unrolled=True, **over))
    torch.manual_seed(0)
    return cfg, build_supernet(cfg, 10, 1).double()


def _exact_unrolled(net, train_loss, val_loss, eta, wd, w_opt, momentum=0.0, nesterov=False):
    """d/dalpha of val_loss(w') with w' the SGD virtual step, by double backprop (no Architect code)."""
    names, weights = zip(*net.named_weights())
    arch = net.arch_parameters()
    gw = torch.autograd.grad(train_loss(net), weights, create_graph=True, allow_unused=True)
    unrolled = {}
    for n, w, g in zip(names, weights, gw):
        d = (torch.zeros_like(w) if g is None else g) + wd * w
        if momentum:
            buf = w_opt.state.get(w, {}).get("momentum_buffer")
            buf = d if buf is None else momentum * buf + d
            d = d + momentum * buf if nesterov else buf
        unrolled[n] = w - eta * d
    arch_names = {id(p): n for n, p in net.named_parameters()}
    params = {**unrolled, **{arch_names[id(a)]: a for a in arch}}
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    val = val_loss(lambda x: functional_call(net, (params, buffers), (x,)))
    return [g.detach() for g in torch.autograd.grad(val, arch)]


def _ce(x, y):
    return lambda model: F.cross_entropy(model(x), y)


def _cos(a, b):
    a, b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("relaxation", ["darts", "pc"])
def test_exact_hvp_gives_the_exact_unrolled_gradient(relaxation):
    cfg, net = _net(relaxation=relaxation, hvp="exact")
    xt, yt, xv, yv = _batches()
    w_opt = torch.optim.SGD(net.weights(), lr=0.1)
    eta = 0.05
    exact = _exact_unrolled(net, _ce(xt, yt), _ce(xv, yv), eta, cfg.weight_decay, w_opt)
    ours, _ = Architect(net, cfg)._unrolled_grads(xt, yt, xv, yv, eta, w_opt)
    for a, b in zip(exact, ours):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-12), (a - b).abs().max()
    # the reference finite difference (R = 0.01/||v||) on the same step: an approximation
    fd_cfg = make_config(overrides=dict(TINY, relaxation=relaxation, unrolled=True))
    fd, _ = Architect(net, fd_cfg)._unrolled_grads(xt, yt, xv, yv, eta, w_opt)
    assert 0.0 < _cos(fd, exact) <= 1.0 + 1e-9


def test_nesterov_virtual_step_with_momentum_buffers():
    cfg, net = _net(relaxation="darts", hvp="exact", nesterov=True, momentum=0.9)
    xt, yt, xv, yv = _batches()
    w_opt = torch.optim.SGD(net.weights(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    F.cross_entropy(net(xt), yt).backward()  # one real step so every weight has a momentum buffer
    w_opt.step()
    w_opt.zero_grad(set_to_none=True)
    for p in net.arch_parameters():
        p.grad = None
    eta = 0.05
    exact = _exact_unrolled(net, _ce(xt, yt), _ce(xv, yv), eta, cfg.weight_decay, w_opt, momentum=0.9, nesterov=True)
    ours, _ = Architect(net, cfg)._unrolled_grads(xt, yt, xv, yv, eta, w_opt)
    for a, b in zip(exact, ours):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-12), (a - b).abs().max()


def test_msg_second_order_averages_the_unrolled_objective_over_its_k_subgraphs():
    cfg, net = _net(relaxation="msg", msg_k=3, msg_distill=0.0, hvp="exact")
    relax = net.relax
    xt, yt, xv, yv = _batches()
    w_opt = torch.optim.SGD(net.weights(), lr=0.1)
    eta = 0.05

    def mean_over(ks, x, y):
        def loss(model):
            out = []
            for k in ks:
                with relax.subgraph(k):
                    out.append(F.cross_entropy(model(x), y))
            return torch.stack(out).mean()

        return loss

    K = range(cfg.msg_k)
    with relax.sample_scope():  # one draw for the references and the Architect's step
        exact = _exact_unrolled(net, mean_over(K, xt, yt), mean_over(K, xv, yv), eta, cfg.weight_decay, w_opt)
        first = _exact_unrolled(net, mean_over([0], xt, yt), mean_over([0], xv, yv), eta, cfg.weight_decay, w_opt)
        ours, _ = Architect(net, cfg)._unrolled_grads(xt, yt, xv, yv, eta, w_opt)
        fd_cfg = make_config(overrides=dict(TINY, relaxation="msg", msg_k=3, msg_distill=0.0, unrolled=True))
        zero, _ = Architect(net, fd_cfg)._unrolled_grads(xt, yt, xv, yv, 0.0, w_opt)
        first_order = torch.autograd.grad(relax.arch_loss(net, xv, yv), net.arch_parameters())
    for a, b in zip(exact, ours):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-12), (a - b).abs().max()
    # sub-graph 0 alone (the old behaviour) is a different objective
    assert max((a - b).abs().max().item() for a, b in zip(first, ours)) > 1e-4
    # with a zero virtual step the unrolled gradient is MSG's first-order (K-mean) gradient
    for a, b in zip(first_order, zero):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("relaxation", ["gdas", "msg"])
def test_search_with_exact_hvp_is_deterministic(tmp_path, relaxation):
    kw = dict(TINY, relaxation=relaxation, epochs=2, warmup_epochs=1, unrolled=True, hvp="exact", max_samples=120)
    a = dnas.search(out=tmp_path / "a", **kw)
    b = dnas.search(out=tmp_path / "b", **kw)
    a.genotype.validate()
    assert a.genotype == b.genotype and a.arch_digest == b.arch_digest
    assert a.history[-1]["arch_loss"] is not None and torch.isfinite(torch.tensor(a.history[-1]["arch_loss"]))
