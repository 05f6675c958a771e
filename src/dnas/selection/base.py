"""How a genotype is chosen from a trained supernet: the registry and what selections share.

A selection is ``fn(cfg, model, train_batches, val_batches, device) -> (arch, log)``, run once
after the last search epoch (the bilevel loop calls :func:`run_selection`). ``argmax`` is the
supernet's own derivation; the others score architectures *inside* the supernet through fixed
op weights (:meth:`dnas.relax.base.Relaxation.fixed_weights`), so they work after any
relaxation on any space that implements ``supernet_weights`` / ``arch_from_weights``.

Selections are deterministic given the model state and ``cfg.seed`` (their own
``random.Random``, batches seeded by epoch), so a run killed during selection and resumed from
its last checkpoint selects the same genotype.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.registry import Registry

Selection = Callable[..., "tuple[Any, dict]"]
SELECTIONS: Registry[Selection] = Registry("selection")


@SELECTIONS.register("argmax")
def argmax_selection(cfg, model, train_b, val_b, device) -> tuple[Any, dict]:
    """The supernet's own derivation (strongest weights)."""
    return model.genotype(), {}


def selection_name(cfg, relax) -> str:
    """``cfg.selection`` if set, else the relaxation's default (SPOS: evolution; others: argmax)."""
    return cfg.selection or getattr(relax, "default_selection", "argmax")


def run_selection(name: str, cfg, model, train_b, val_b, device) -> tuple[Any, dict]:
    """Run the selection ``name``; returns the architecture and a JSON-able log."""
    torch.manual_seed(cfg.seed)  # tie any torch randomness of the phase to the seed, not the RNG history
    model.train()
    try:
        return SELECTIONS.get(name, "selection")(cfg, model, train_b, val_b, device)
    finally:
        model.train()


def op_params(model: nn.Module) -> list[nn.Parameter]:
    """The (edges, ops) architecture parameters (edge parameters are 1-D)."""
    return [p for p in model.arch_parameters() if p.dim() == 2]


def cached_batches(batches, device, epoch: int, limit: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of ``epoch`` (a fixed, seeded order), at most ``limit``, moved to ``device``."""
    batches.set_epoch(epoch)
    out = []
    for x, y in batches:
        if limit is not None and len(out) >= limit:
            break
        out.append((x.to(device), y.to(device)))
    return out


def evaluate(model: nn.Module, weights: dict, batches) -> tuple[float, float]:
    """Eval-mode (accuracy, mean cross-entropy) of the supernet forwarding the fixed ``weights``."""
    model.eval()
    correct = total = 0
    loss = 0.0
    with torch.no_grad(), model.relax.fixed_weights(weights):
        for x, y in batches:
            out = model(x)
            correct += (out.argmax(1) == y).sum().item()
            loss += F.cross_entropy(out, y, reduction="sum").item()
            total += y.numel()
    return correct / max(total, 1), loss / max(total, 1)


def accuracy(model: nn.Module, weights: dict, batches) -> float:
    """Eval-mode accuracy of the supernet forwarding the fixed ``weights``."""
    return evaluate(model, weights, batches)[0]


def recalibrate_bn(model: nn.Module, weights: dict, batches) -> None:
    """Recompute every BatchNorm's running statistics for the architecture given by ``weights``
    (SPOS's BN recalibration): reset, then a cumulative average over ``batches`` in train mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with torch.no_grad(), model.relax.fixed_weights(weights):
            for x, _ in batches:
                model(x)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


def tune_weights(cfg, model: nn.Module, weights: dict, batches, epochs: int) -> None:
    """A few SGD epochs on the weights with the op weights fixed (DARTS-PT's fine-tuning between
    decisions), at the end-of-schedule learning rate ``max(lr_min, 1e-3)``."""
    if epochs <= 0:
        return
    params = model.weights()
    opt = torch.optim.SGD(params, lr=max(cfg.lr_min, 1e-3), momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    model.train()
    with model.relax.fixed_weights(weights):
        for _ in range(epochs):
            for x, y in batches:
                loss = F.cross_entropy(model(x), y)
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                for p, g in zip(params, grads):
                    p.grad = g
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
