"""Finite-state checks: a model whose weights, architecture parameters or BatchNorm statistics
hold NaN/inf must never be checkpointed or saved as a result.

A loss can stay finite while BatchNorm running statistics overflow (a huge learning rate with a
loose gradient clip), so checking the loss alone lets an ``inf`` model through; these checks look
at every floating tensor of the state."""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch
from torch import nn

from dnas.errors import DivergenceError


def nonfinite_tensors(state: Mapping[str, torch.Tensor] | nn.Module) -> list[str]:
    """Names of the floating-point tensors of ``state`` (a module's parameters and buffers, or a
    state dict) that hold a NaN or an infinity."""
    items: Iterable[tuple[str, torch.Tensor]]
    if isinstance(state, nn.Module):
        items = list(state.named_parameters()) + list(state.named_buffers())
    else:
        items = state.items()
    bad = []
    with torch.no_grad():
        for name, t in items:
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad.append(name)
    return bad


def check_finite_model(model: nn.Module, where: str, fix: str, **values: float | None) -> None:
    """Raise one :class:`DivergenceError` line if any tensor of ``model`` or any of ``values``
    (e.g. ``val_loss``) is not finite; ``where`` says when, ``fix`` what to change."""
    bad_values = [k for k, v in values.items() if v is not None and not math.isfinite(float(v))]
    bad = nonfinite_tensors(model)
    if not bad and not bad_values:
        return
    what = ", ".join(bad_values + bad[:3]) + (f" (+{len(bad) - 3} more tensors)" if len(bad) > 3 else "")
    raise DivergenceError(f"{where}: not finite: {what}; the last checkpoint is the last finite state; {fix}")
