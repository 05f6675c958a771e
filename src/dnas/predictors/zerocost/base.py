"""The proxy registry and the conventions every zero-cost proxy shares.

A proxy is ``fn(model, x, y, *, loss_fn, generator) -> float``: it scores an *untrained*
network (``model``, in train mode, freshly initialised) from one batch ``x, y`` of the user's
data (data-independent proxies ignore ``x``'s values and use only its shape). Larger scores are
meant to predict higher accuracy (NAS-Bench-Suite-Zero's sign convention; ``jacov`` is already
negated by its definition). A proxy never changes ``model``: those that edit weights or
layers work on a deep copy.

Conventions follow NASLib's zero-cost code, which computed NAS-Bench-Suite-Zero's published
scores (Krishnakumar et al. 2022, "NAS-Bench-Suite-Zero"; the measures come from Abdelfattah
et al. 2021, "Zero-Cost Proxies for Lightweight NAS"):

* the layers that count are ``nn.Conv2d`` and ``nn.Linear`` (their ``weight``), summed over all
  elements and layers (:func:`prunable_layers`);
* the network is in train mode, so BatchNorm normalises with the batch statistics; only
  ``synflow`` removes BatchNorm (``bn=False`` in NASLib) - see :func:`without_batchnorm`;
* one batch (NASLib's ``dataload="random"``, ``num_imgs_or_batches=1``), cross-entropy loss,
  ``split_data=1``. dnas's default batch is 64 images (:mod:`dnas.predictors.zerocost.scorer`).
"""
from __future__ import annotations

import copy
from typing import Callable, Iterator

import torch
import torch.nn as nn

from dnas.registry import Registry

#: ``name -> fn(model, x, y, *, loss_fn, generator) -> float``.
PROXIES: Registry[Callable[..., float]] = Registry("proxy")

#: Proxies that need no real images: scored on an all-ones or Gaussian input of the given shape.
DATA_INDEPENDENT: set[str] = set()


def register_proxy(name: str, *, data_independent: bool = False):
    """Decorator: register a proxy function under ``name``."""

    def add(fn: Callable[..., float]) -> Callable[..., float]:
        PROXIES.register(name, fn, overwrite=True)
        if data_independent:
            DATA_INDEPENDENT.add(name)
        return fn

    return add


def prunable_layers(model: nn.Module) -> Iterator[nn.Module]:
    """The layers whose weights the proxies score: convolutions and linear layers (NASLib's
    ``get_layer_metric_array``)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            yield m


def without_batchnorm(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every BatchNorm layer replaced by the identity: the
    network NASLib builds with ``bn=False`` for synflow (BatchNorm would rescale the flow and
    make the score depend on the input batch)."""
    net = copy.deepcopy(model)

    def strip(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())
            else:
                strip(child)

    strip(net)
    return net


def loss_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> nn.Module:
    """A deep copy of ``model`` after one forward/backward of ``loss_fn`` on ``(x, y)``: its
    ``.grad`` fields hold the loss gradients the gradient-based proxies read."""
    net = copy.deepcopy(model)
    net.train()
    net.zero_grad(set_to_none=True)
    loss_fn(net(x), y).backward()
    return net


def weight_grad(layer: nn.Module) -> torch.Tensor:
    """``layer.weight.grad``, or zeros for a weight the loss does not reach (e.g. behind a
    ``none`` edge)."""
    g = layer.weight.grad
    return torch.zeros_like(layer.weight) if g is None else g


def total(values) -> float:
    """Sum of per-layer tensors (or numbers) as a Python float."""
    s = 0.0
    for v in values:
        s += float(v.sum()) if isinstance(v, torch.Tensor) else float(v)
    return s
