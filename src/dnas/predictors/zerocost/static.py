"""Proxies that need no labels: l2_norm, params, flops (architecture statistics) and zen.

* ``l2_norm``: sum over conv / linear layers of ``||W||_2`` at initialisation (NASLib).
* ``params``: trainable parameters in millions; ``flops``: multiply-adds of one image in
  millions (:func:`dnas.cost.count_macs`; NAS-Bench-201 calls these FLOPs) - the records'
  ``params_m`` / ``flops_m`` of the same network.
* ``zen`` (Lin et al. 2021, "Zen-NAS"): with every conv / linear weight redrawn from N(0, 1) and
  BatchNorm affine reset (weight 1, bias 0), Gaussian inputs ``x1, x2`` of the batch's shape,
  ``Delta = mean_n sum |f(x1) - f(x1 + 0.01 x2)|`` over the feature map *before* global pooling,
  plus ``sum_bn log sqrt(mean running_var)`` of the BatchNorm layers after those forwards
  (train mode) - ``log Delta + sum log sigma``. The pre-pooling map is the input of the last
  ``nn.AdaptiveAvgPool2d``; a network that pools functionally gives the classifier's input.
  All draws come from the scorer's seeded generator; ``x``'s values are not used.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from dnas.predictors.zerocost.base import prunable_layers, register_proxy, total


@register_proxy("l2_norm", data_independent=True)
def l2_norm(model, x=None, y=None, *, loss_fn=None, generator=None) -> float:
    return total(l.weight.detach().norm() for l in prunable_layers(model))


@register_proxy("params", data_independent=True)
def params(model, x=None, y=None, *, loss_fn=None, generator=None) -> float:
    from dnas.cost import count_params

    return count_params(model) / 1e6


@register_proxy("flops", data_independent=True)
def flops(model, x, y=None, *, loss_fn=None, generator=None) -> float:
    from dnas.cost import count_macs

    return count_macs(copy.deepcopy(model), (1, *x.shape[1:])) / 1e6


def _pre_gap_features(net: nn.Module, inp: torch.Tensor) -> torch.Tensor:
    pools = [m for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    target = pools[-1] if pools else (linears[-1] if linears else None)
    if target is None:
        return net(inp)
    seen: list[torch.Tensor] = []
    h = target.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    try:
        net(inp)
    finally:
        h.remove()
    return seen[-1]


@register_proxy("zen", data_independent=True)
def zen(model, x, y=None, *, loss_fn=None, generator=None, mixup_gamma: float = 1e-2) -> float:
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    net = copy.deepcopy(model)
    net.train()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.affine:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
                if m.running_var is not None:
                    m.running_var.fill_(1.0)
                    m.running_mean.zero_()
        x1 = torch.randn(x.shape, generator=g, dtype=x.dtype)
        x2 = torch.randn(x.shape, generator=g, dtype=x.dtype)
        f1 = _pre_gap_features(net, x1)
        f2 = _pre_gap_features(net, x1 + mixup_gamma * x2)
        delta = (f1 - f2).abs().reshape(len(x), -1).sum(1).mean()
        log_bn = 0.0
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
                log_bn += float(torch.log(torch.sqrt(m.running_var.mean())))
    d = float(delta)
    return math.log(d) + log_bn if d > 0 else -math.inf
