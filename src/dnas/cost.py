"""Counting the cost of a network: parameters and multiply-adds.

Parameter counts follow the DARTS convention: the auxiliary head is a training aid, dropped
at inference, so it is excluded (any parameter whose name contains ``auxiliary``), which is
how the published sizes (e.g. DARTS_V2 on CIFAR-10: 3,349,342) are computed.

Multiply-adds come from :class:`torch.utils.flop_counter.FlopCounterMode` (which counts
2 FLOPs per multiply-add of convolutions and matrix products) on one forward pass at batch 1
in eval mode, so the auxiliary head is not run. Element-wise ops (BN, ReLU, pooling, adds)
are not counted, as is usual for reported MACs. The pass runs on a copy of the model on the
``meta`` device (shapes only, no arithmetic), so counting a full-size network takes well under
a second; modules without meta kernels fall back to a real forward pass.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from dnas.genotype import Genotype


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


def network_cost(
    genotype: Genotype | str,
    net: str = "cifar",
    C: int = 36,
    layers: int = 20,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int = 32,
) -> dict[str, int]:
    """Params (no aux head), aux-head params and MACs of the evaluation network of a genotype."""
    from dnas.models import build_network

    with torch.device("meta"):  # shapes only: no memory for weights, no initialisation cost
        model = build_network(
            genotype, net=net, C=C, layers=layers, num_classes=num_classes, in_channels=in_channels, auxiliary=True
        )
    return {
        "params": count_params(model),
        "aux_params": count_aux_params(model),
        "macs": count_macs(model, (in_channels, image_size, image_size)),
    }
