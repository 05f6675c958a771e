"""SynFlow (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
conserving synaptic flow"), as a NAS proxy (Abdelfattah et al. 2021).

``R = 1^T (prod_l |W_l|) 1``: on a copy of the network with BatchNorm removed, every parameter
replaced by its absolute value and everything in float64 (the product of many layers overflows
float32 on deep nets), one forward pass of an all-ones input of batch 1 and the shape of ``x``,
``R = sum(output)``; the score is ``sum |W * dR/dW|`` over the conv / linear weights. No data and
no labels are used: the score depends only on the architecture and the initial weights.

Reported as ``log(1 + score)``: NAS-Bench-Suite-Zero's published synflow values are the natural
log of this sum (ours at the same network agree to ~0.1, e.g. 31.20 vs their 31.21), raw values
span 1e13..1e50 on NB201, and ``log1p`` keeps a network whose flow is cut (all ``none``) at 0, as
the published table has it.
"""
from __future__ import annotations

import math

import torch

from dnas.predictors.zerocost.base import prunable_layers, register_proxy, total, weight_grad, without_batchnorm


@register_proxy("synflow", data_independent=True)
def synflow(model, x, y=None, *, loss_fn=None, generator=None) -> float:
    net = without_batchnorm(model).double()
    net.train()
    with torch.no_grad():
        for p in net.state_dict().values():
            if p.is_floating_point():
                p.abs_()
    net.zero_grad(set_to_none=True)
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    net(ones).sum().backward()
    raw = total((l.weight.detach() * weight_grad(l)).abs() for l in prunable_layers(net))
    return math.log1p(raw) if math.isfinite(raw) else math.inf
