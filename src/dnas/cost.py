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

import torch

from dnas.counting import _macs, count_aux_params, count_macs, count_params  # noqa: F401  (re-exported)
from dnas.genotype import Genotype

__all__ = ["count_params", "count_aux_params", "count_macs", "network_cost"]


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
