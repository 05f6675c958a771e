"""Counting parameters and multiply-adds of any ``nn.Module``, with no knowledge of genotypes.

Kept apart from :mod:`dnas.cost` (which builds networks from genotypes) so that the space
interface (:mod:`dnas.spaces.base`) can count any space's network without importing the
genotype and model modules (which import the space interface: that would be a circle).
See :mod:`dnas.cost` for the counting conventions.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, exclude_aux: bool = True) -> int:
    """Number of parameters, without the auxiliary head unless ``exclude_aux=False``."""
    return sum(p.numel() for n, p in model.named_parameters() if not (exclude_aux and "auxiliary" in n))


def count_aux_params(model: nn.Module) -> int:
    """Number of parameters of the auxiliary head (0 without one)."""
    return sum(p.numel() for n, p in model.named_parameters() if "auxiliary" in n)


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one eval-mode forward pass on a zero input of ``input_shape``.

    ``input_shape`` is ``(C, H, W)`` or ``(1, C, H, W)``; the count is for batch 1. The
    model's train/eval mode is restored afterwards.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or shape[0] != 1:
        raise ValueError(f"input_shape: expected (C, H, W) or (1, C, H, W), got {tuple(input_shape)}")
    try:
        meta_model = copy.deepcopy(model).to("meta")
        return _macs(meta_model, torch.zeros(shape, device="meta"))
    except (NotImplementedError, RuntimeError, TypeError):
        pass  # an op without a meta kernel: count on the real device
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return _macs(model, torch.zeros(shape, device=device))


def _macs(model: nn.Module, x: torch.Tensor) -> int:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
