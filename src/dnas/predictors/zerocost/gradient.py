"""Pruning-at-initialisation saliencies of the loss gradient: snip, grasp, fisher, grad_norm,
plain. Each is summed over the weights of every conv / linear layer (see :mod:`.base`).

* ``grad_norm``: sum over layers of the Euclidean norm of ``dL/dW`` (Abdelfattah et al. 2021).
* ``plain``: ``sum(W * dL/dW)``, signed (Mozer & Smolensky 1989, as in Abdelfattah et al.).
* ``snip``: connection sensitivity ``|dL/dm|`` of a multiplicative mask ``m = 1`` on every
  weight (Lee et al. 2019, "SNIP"); since ``dL/dm = W * dL/dW`` at ``m = 1`` we compute
  ``sum |W * dL/dW|`` directly (the same number without patching every layer's forward).
* ``grasp``: ``-W * (H g)`` where ``g = dL/dW`` and ``H g`` the Hessian-gradient product
  (Wang et al. 2020, "GraSP"), computed as NASLib does: ``g`` from a first pass (detached), then
  ``d/dW (g . dL/dW)`` from a second pass with ``create_graph``; temperature 1, one iteration.
* ``fisher``: per channel of every conv / linear output ``a``, ``0.5 * mean_n (sum_hw a * dL/da)^2``
  (Theis et al. 2018; Turner et al. 2020, "BlockSwap"); NASLib reports it per channel and then
  broadcasts it over the layer's weight shape before summing, so each channel counts
  ``fan_in = prod(weight.shape[1:])`` times - we keep that weighting so scores match theirs.
"""
from __future__ import annotations

import copy

import torch

from dnas.predictors.zerocost.base import loss_gradients, prunable_layers, register_proxy, total, weight_grad


@register_proxy("grad_norm")
def grad_norm(model, x, y, *, loss_fn, generator=None) -> float:
    net = loss_gradients(model, x, y, loss_fn)
    return total(weight_grad(l).norm() for l in prunable_layers(net))


@register_proxy("plain")
def plain(model, x, y, *, loss_fn, generator=None) -> float:
    net = loss_gradients(model, x, y, loss_fn)
    return total(weight_grad(l) * l.weight.detach() for l in prunable_layers(net))


@register_proxy("snip")
def snip(model, x, y, *, loss_fn, generator=None) -> float:
    net = loss_gradients(model, x, y, loss_fn)
    return total((weight_grad(l) * l.weight.detach()).abs() for l in prunable_layers(net))


@register_proxy("grasp")
def grasp(model, x, y, *, loss_fn, generator=None) -> float:
    net = copy.deepcopy(model)
    net.train()
    net.zero_grad(set_to_none=True)
    layers = list(prunable_layers(net))
    weights = [l.weight for l in layers]
    g = torch.autograd.grad(loss_fn(net(x), y), weights, allow_unused=True)
    grad_f = torch.autograd.grad(loss_fn(net(x), y), weights, create_graph=True, allow_unused=True)
    z = 0.0
    for gw, gf in zip(g, grad_f):
        if gw is not None and gf is not None:
            z = z + (gw.detach() * gf).sum()
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return 0.0
    z.backward()
    return total(-l.weight.detach() * weight_grad(l) for l in layers)


@register_proxy("fisher")
def fisher(model, x, y, *, loss_fn, generator=None) -> float:
    net = copy.deepcopy(model)
    net.train()
    net.zero_grad(set_to_none=True)
    scores: dict[int, torch.Tensor] = {}
    fan_in: dict[int, int] = {}
    handles = []

    def hook(layer_id: int):
        def fwd(module, inputs, out):
            if not out.requires_grad:
                return

            def on_grad(grad, act=out.detach()):
                g = act * grad.detach()
                g_nk = g.sum(dim=tuple(range(2, g.dim()))) if g.dim() > 2 else g
                del_k = g_nk.pow(2).mean(0).mul(0.5)
                scores[layer_id] = scores.get(layer_id, 0) + del_k

            out.register_hook(on_grad)

        return fwd

    for i, layer in enumerate(prunable_layers(net)):
        fan_in[i] = int(torch.tensor(layer.weight.shape[1:]).prod())
        handles.append(layer.register_forward_hook(hook(i)))
    try:
        loss_fn(net(x), y).backward()
    finally:
        for h in handles:
            h.remove()
    return total(v * fan_in[i] for i, v in scores.items())
