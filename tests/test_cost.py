"""Parameter and multiply-add counting, checked against the reference implementation."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from dnas.cost import count_aux_params, count_macs, count_params, network_cost
from dnas.genotype import Genotype
from dnas.models import build_network



# Reference numbers, obtained by running a faithful re-implementation of the released DARTS code
# (quark0/darts cnn/model.py NetworkCIFAR / NetworkImageNet + cnn/operations.py, genotypes from
# yuhuixu1993/PC-DARTS genotypes.py) with auxiliary=True and counting parameters whose name does
# not contain "auxiliary", as the reference train.py does. DARTS_V2 on CIFAR is the published
# 3,349,342 (3.3M); PC-DARTS CIFAR 3.6M and ImageNet 5.3M, DARTS ImageNet 4.7M as in the papers.
REFERENCE_PARAMS = {
    # genotype: (CIFAR C=36 20 layers 10 classes, ImageNet C=48 14 layers 1000 classes)
    "DARTS_V1": (3_169_414, 4_510_432),
    "DARTS_V2": (3_349_342, 4_718_752),
    "PC_DARTS_cifar": (3_634_678, 5_270_560),
    "PC_DARTS_image": (3_721_510, 5_342_464),
}
# Auxiliary heads of the reference (same for every genotype: they depend only on widths).
REFERENCE_AUX = (476_426, 1_260_776)


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_param_counts_match_reference_cifar(name):
    model = build_network(name, net="cifar", C=36, layers=20, num_classes=10, auxiliary=True)
    assert count_params(model) == REFERENCE_PARAMS[name][0]
    assert count_aux_params(model) == REFERENCE_AUX[0]
    assert count_params(model, exclude_aux=False) == REFERENCE_PARAMS[name][0] + REFERENCE_AUX[0]


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_param_counts_match_reference_imagenet(name):
    model = build_network(name, net="imagenet", C=48, layers=14, num_classes=1000, auxiliary=True)
    assert count_params(model) == REFERENCE_PARAMS[name][1]
    assert count_aux_params(model) == REFERENCE_AUX[1]


def test_macs_of_conv_and_linear_match_hand_count():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),           # 8x8 out: 8*8 * 8 * 3*3*3
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),   # depthwise, 4x4 out: 4*4 * 8 * 1*3*3
        nn.Conv2d(8, 16, 1, bias=False),                     # pointwise, 4x4 out: 4*4 * 16 * 8
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),                                    # 16 * 5
    )
    hand = 8 * 8 * 8 * 27 + 4 * 4 * 8 * 9 + 4 * 4 * 16 * 8 + 16 * 5
    assert count_macs(model, (3, 8, 8)) == hand
    assert count_macs(model, (1, 3, 8, 8)) == hand


def test_macs_of_a_cell_network_match_hand_count():
    """A genotype of pooling ops only: every multiply-add is in the stem, the cells' preprocessing
    1x1 convs (or factorized reduce) and the classifier, which we count by hand."""
    edges = [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 2),
             ("max_pool_3x3", 1), ("max_pool_3x3", 3), ("max_pool_3x3", 2), ("max_pool_3x3", 4)]
    g = Genotype(edges, [2, 3, 4, 5], edges, [2, 3, 4, 5])
    model = build_network(g, C=4, layers=3, num_classes=10, in_channels=1, auxiliary=True)
    # layers=3: reductions at cells 1 and 2; 8x8 input
    stem = 8 * 8 * 12 * 1 * 9                         # conv3x3 1 -> 3*C=12
    cell0 = 8 * 8 * 4 * 12 + 8 * 8 * 4 * 12           # two 1x1 ReLUConvBN 12 -> 4 at 8x8; out 16 ch
    cell1 = 8 * 8 * 8 * 12 + 8 * 8 * 8 * 16           # reduction, C=8: 12 -> 8 and 16 -> 8 at 8x8; out 32 ch at 4x4
    cell2 = 2 * (4 * 4 * 8 * 16) + 4 * 4 * 16 * 32    # FactorizedReduce 16 -> 16 (two 1x1 s2 convs to 8 ch) + 32 -> 16 at 4x4
    classifier = 64 * 10                              # 4 nodes x 16 ch
    assert count_macs(model, (1, 8, 8)) == stem + cell0 + cell1 + cell2 + classifier


def test_count_macs_restores_mode_and_excludes_aux_head():
    model = build_network("DARTS_V2", C=4, layers=3, num_classes=10, in_channels=1, auxiliary=True)
    plain = build_network("DARTS_V2", C=4, layers=3, num_classes=10, in_channels=1, auxiliary=False)
    model.train()
    assert count_macs(model, (1, 8, 8)) == count_macs(plain, (1, 8, 8)) > 0
    assert model.training
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(model, (2, 1, 8, 8))


def test_network_cost_reports_all_three_numbers():
    cost = network_cost("DARTS_V2", net="cifar", C=36, layers=20, num_classes=10, in_channels=3, image_size=32)
    assert cost["params"] == 3_349_342
    assert cost["aux_params"] == 476_426
    # the reference model run under the same counter gives 528,359,040 multiply-adds
    assert cost["macs"] == 528_359_040
    small = network_cost("DARTS_V2", net="cifar", C=8, layers=5, num_classes=10, in_channels=1, image_size=16)
    assert 0 < small["params"] < cost["params"] and 0 < small["macs"] < cost["macs"]


def test_meta_device_count_equals_real_forward_count():
    from dnas.cost import _macs

    model = build_network("PC_DARTS_cifar", C=4, layers=3, num_classes=10, in_channels=1, auxiliary=True)
    assert count_macs(model, (1, 12, 12)) == _macs(model, torch.zeros(1, 1, 12, 12))
