"""Proxies from the input Jacobian and the activation patterns: jacov, epe_nas, nwot.

* ``jacov`` (Mellor et al. 2021 v1, "Neural Architecture Search without Training"): the
  Jacobian ``J = d sum(f(x)) / dx`` of the batch, one row per image; with ``C`` the
  correlation matrix of the rows and ``v`` its eigenvalues, ``-sum(log(v + k) + 1/(v + k))``,
  ``k = 1e-5``. NASLib returns NaN when the eigen-decomposition fails; so do we.
* ``epe_nas`` (Lopes et al. 2021, "EPE-NAS"): the same Jacobians grouped by label; per class
  ``c`` the score ``s_c = sum log(|corr(J_c)| + k)``; the proxy is
  ``sum_{c, c'} |s_c - s_c'| / (number of classes present)`` (10 <= 100 classes branch of the
  reference code).
* ``nwot`` (Mellor et al. 2021 v2): for every ReLU, the binary code ``c = [input > 0]`` of each
  image; the kernel ``K = sum_relus (c c^T + (1 - c)(1 - c)^T)`` (the number of units on which two
  images agree); the score is ``log |det K|``. ReLUs are the modules whose class name contains
  ``ReLU`` (as NASLib); a network without any uses its other activation modules' inputs.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn

from dnas.predictors.zerocost.base import register_proxy

_ACTIVATIONS = (nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish, nn.ELU, nn.Tanh, nn.Sigmoid)


def batch_jacobian(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """``d sum(f(x)) / dx`` per image, flattened: shape ``(batch, C*H*W)`` (float64)."""
    net = copy.deepcopy(model)
    net.train()
    xi = x.detach().clone().requires_grad_(True)
    out = net(xi)
    out.backward(torch.ones_like(out))
    return xi.grad.detach().reshape(len(x), -1).double().numpy()


@register_proxy("jacov")
def jacov(model, x, y=None, *, loss_fn=None, generator=None) -> float:
    jac = batch_jacobian(model, x)
    k = 1e-5
    try:
        with np.errstate(all="ignore"):
            v = np.linalg.eigvals(np.corrcoef(jac))
            s = -np.sum(np.log(v + k) + 1.0 / (v + k))
        s = float(np.real(s))
    except (np.linalg.LinAlgError, ValueError):
        return math.nan
    return s if math.isfinite(s) else math.nan


@register_proxy("epe_nas")
def epe_nas(model, x, y, *, loss_fn=None, generator=None) -> float:
    jac = batch_jacobian(model, x)
    labels = y.detach().cpu().numpy()
    k = 1e-5
    per_class: dict[int, float] = {}
    with np.errstate(all="ignore"):
        for c in np.unique(labels):
            rows = jac[labels == c]
            corr = np.corrcoef(rows) if len(rows) > 1 else np.ones((1, 1))
            s = float(np.sum(np.log(np.abs(np.nan_to_num(corr, nan=0.0)) + k)))
            per_class[int(c)] = s
    vals = np.array(list(per_class.values()))
    if not len(vals):
        return math.nan
    return float(np.abs(vals[:, None] - vals[None, :]).sum() / len(vals))


@register_proxy("nwot")
def nwot(model, x, y=None, *, loss_fn=None, generator=None) -> float:
    net = copy.deepcopy(model)
    net.train()
    B = len(x)
    K = np.zeros((B, B))
    relus = [m for m in net.modules() if "ReLU" in type(m).__name__]
    acts = relus or [m for m in net.modules() if isinstance(m, _ACTIVATIONS)]

    def hook(module, inputs, out):
        c = (inputs[0].detach().reshape(B, -1) > 0).double()
        K[...] += (c @ c.t() + (1.0 - c) @ (1.0 - c).t()).numpy()

    handles = [m.register_forward_hook(hook) for m in acts]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = np.linalg.slogdet(K)
    return float(logdet)
