"""Evaluation networks: shapes on small/odd inputs, aux head, drop-path semantics, registry."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dnas.errors import ConfigError, GenotypeError
from dnas.genotype import PUBLISHED, Genotype
from dnas.models import NETWORKS, build_network
from dnas.models.cell import Cell, PaddedFactorizedReduce, drop_path
from dnas.models.heads import PoolTo2x2
from dnas.ops import FactorizedReduce, Identity




@pytest.mark.parametrize("net", ["cifar", "imagenet"])
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("size", [8, 28])
def test_forward_shapes_train_and_eval(net, in_channels, size):
    torch.manual_seed(0)
    model = build_network("PC_DARTS_cifar", net=net, C=4, layers=3, num_classes=7,
                          in_channels=in_channels, auxiliary=True, drop_path_prob=0.2)
    x = torch.rand(2, in_channels, size, size)
    model.train()
    logits, aux = model(x)
    assert logits.shape == (2, 7) and aux.shape == (2, 7)
    assert torch.isfinite(logits).all() and torch.isfinite(aux).all()
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 7)


def test_no_auxiliary_gives_none_and_no_aux_params():
    model = build_network("DARTS_V2", C=4, layers=3, num_classes=10, in_channels=1)
    model.train()
    logits, aux = model(torch.rand(2, 1, 8, 8))
    assert aux is None and logits.shape == (2, 10)
    assert not any("auxiliary" in n for n, _ in model.named_parameters())


def test_aux_head_uses_reference_pool_at_reference_size_and_adapts_elsewhere():
    x = torch.randn(2, 5, 8, 8)
    pool = PoolTo2x2(5, 3)  # CIFAR head: 8x8 -> 2x2 exactly like AvgPool2d(5, stride=3)
    assert torch.equal(pool(x), F.avg_pool2d(x, 5, 3, count_include_pad=False))
    x7 = torch.randn(2, 5, 7, 7)  # ImageNet head at 224 px sees 7x7
    assert torch.equal(PoolTo2x2(5, 2)(x7), F.avg_pool2d(x7, 5, 2, count_include_pad=False))
    for s in (1, 2, 3, 4, 14):
        y = pool(torch.randn(2, 5, s, s))
        assert y.shape == (2, 5, 2, 2)
    # the adaptive branch averages: a constant map stays constant
    assert torch.allclose(pool(torch.full((1, 1, 4, 4), 3.0)), torch.full((1, 1, 2, 2), 3.0))


def _strided_factorized_reduce(op, x):
    """The textbook FactorizedReduce (two stride-2 1x1 convs, the second on x[1:, 1:], output
    padded for odd sizes), written out here as the reference for the subsampled version."""
    x = torch.relu(x)
    a = F.conv2d(x, op.conv_1.weight, stride=2)  # the module's convs run on subsampled views (stride 1)
    b = F.conv2d(x[:, :, 1:, 1:], op.conv_2.weight, stride=2)
    b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
    return op.bn(torch.cat([a, b], dim=1))


@pytest.mark.parametrize("size", [2, 3, 5, 8, 9])
@pytest.mark.parametrize("channels_last", [False, True])
def test_factorized_reduce_equals_the_strided_convs(size, channels_last):
    """Values and both gradients of the subsampled branches equal the strided convs'."""
    torch.manual_seed(0)
    ours = PaddedFactorizedReduce(4, 8)
    ref = FactorizedReduce(4, 8)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 4, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), _strided_factorized_reduce(ref, x2)
    assert torch.allclose(y1, y2, atol=1e-5)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5)
    assert torch.allclose(ours.conv_2.weight.grad, ref.conv_2.weight.grad, atol=1e-4)
    assert torch.allclose(ours.conv_1.weight.grad, ref.conv_1.weight.grad, atol=1e-4)


def test_padded_factorized_reduce_handles_1x1():
    assert PaddedFactorizedReduce(4, 8)(torch.randn(2, 4, 1, 1)).shape == (2, 8, 1, 1)


def _uniform_genotype(op: str) -> Genotype:
    edges = [(op, 0), (op, 1), (op, 0), (op, 2), (op, 1), (op, 3), (op, 2), (op, 4)]
    return Genotype(edges, [2, 3, 4, 5], edges, [2, 3, 4, 5])


def test_drop_path_never_touches_identity_edges():
    torch.manual_seed(0)
    cell = Cell(_uniform_genotype("skip_connect"), 6, 6, 4, reduction=False, reduction_prev=False)
    assert all(isinstance(op, Identity) for op in cell.ops) and not any(cell.droppable)
    cell.train()
    s0, s1 = torch.randn(8, 6, 5, 5), torch.randn(8, 6, 5, 5)
    # train-mode BN uses batch statistics either way, so only drop-path could make a difference
    assert torch.equal(cell(s0, s1, 0.0), cell(s0, s1, 0.9))


def test_drop_path_applies_to_weighted_ops_in_train_only():
    torch.manual_seed(0)
    cell = Cell(_uniform_genotype("sep_conv_3x3"), 6, 6, 4, reduction=False, reduction_prev=False)
    assert all(cell.droppable)
    s0, s1 = torch.randn(16, 6, 5, 5), torch.randn(16, 6, 5, 5)
    cell.train()
    clean = cell(s0, s1, 0.0)
    dropped = cell(s0, s1, 0.9)
    assert not torch.allclose(clean, dropped)
    # with p=0.9 on both edges, node 2 (= concat slot 0) is exactly zero for some samples
    node2 = dropped[:, :4]
    assert (node2.flatten(1).abs().sum(1) == 0).any()
    cell.eval()
    assert torch.equal(cell(s0, s1, 0.0), cell(s0, s1, 0.9))


def test_drop_path_function_zeroes_or_rescales_samples():
    torch.manual_seed(0)
    x = torch.ones(1000, 2, 3, 3)
    y = drop_path(x, 0.25)
    per_sample = y.flatten(1)
    kept_rows = per_sample[:, 0] > 0
    assert torch.equal(per_sample[~kept_rows], torch.zeros_like(per_sample[~kept_rows]))
    assert torch.allclose(per_sample[kept_rows], torch.full_like(per_sample[kept_rows], 1 / 0.75))
    kept = kept_rows.float().mean().item()
    assert 0.7 < kept < 0.8
    assert drop_path(x, 0.0) is x


def test_network_drop_path_prob_attribute_is_used():
    model = build_network("DARTS_V2", C=4, layers=3, num_classes=10, in_channels=1)
    model.train()
    x = torch.rand(8, 1, 8, 8)
    torch.manual_seed(1)
    a, _ = model(x)
    model.drop_path_prob = 0.5
    torch.manual_seed(1)
    b, _ = model(x)
    assert not torch.allclose(a, b)


def test_custom_concat_and_steps_change_widths():
    g = Genotype([("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 2), ("dil_conv_3x3", 0),
                  ("avg_pool_3x3", 3), ("sep_conv_5x5", 1)], [3, 4],
                 [("max_pool_3x3", 0), ("skip_connect", 1), ("sep_conv_3x3", 2), ("skip_connect", 0),
                  ("dil_conv_5x5", 3), ("max_pool_3x3", 1)], [2, 3, 4])
    g.validate()
    model = build_network(g, C=4, layers=3, num_classes=3, in_channels=1)
    assert model.cells[0].multiplier == 2 and model.cells[1].multiplier == 3
    # classifier input = last cell's concat (3 nodes) x its width (C*4 after two reductions)
    assert model.classifier.in_features == 3 * 16
    model.eval()
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 3)


def test_registry_and_argument_errors():
    assert {"cifar", "imagenet"} <= set(NETWORKS.names())
    with pytest.raises(ConfigError, match="net"):
        build_network("DARTS_V2", net="nope", C=4, layers=3, num_classes=10)
    with pytest.raises(ConfigError, match="even"):
        build_network("DARTS_V2", C=5, layers=3, num_classes=10)
    with pytest.raises(GenotypeError):
        build_network("NOT_A_GENOTYPE", C=4, layers=3, num_classes=10)
    assert set(PUBLISHED) >= {"DARTS_V1", "DARTS_V2", "PC_DARTS_cifar", "PC_DARTS_image"}


def test_non_darts_networks_receive_the_raw_genotype_spec():
    """A network registered without ``darts_genotype`` gets the spec untouched (e.g. NB201 strings)."""
    seen = {}

    class Probe(torch.nn.Module):
        def __init__(self, genotype, C, layers, num_classes, in_channels, auxiliary, drop_path_prob):
            super().__init__()
            seen.update(genotype=genotype, C=C)
            self.drop_path_prob = drop_path_prob

    NETWORKS.register("probe_raw_spec", Probe, overwrite=True)
    build_network("|anything~0|", net="probe_raw_spec", C=3, layers=1, num_classes=2)
    assert seen == {"genotype": "|anything~0|", "C": 3}  # odd C allowed: no factorized reduce here


@pytest.mark.parametrize("C", [2, 4])
def test_channels_last_matches_contiguous(C):
    """The trainer runs channels_last on CPU; tiny stride-2 1x1 convs (factorized reduce with
    few channels, as in PC_DARTS_image's reduction skip) must still give the same numbers."""
    import copy

    torch.manual_seed(0)
    model = build_network("PC_DARTS_image", C=C, layers=3, num_classes=10, in_channels=1, auxiliary=True).eval()
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    x = torch.rand(4, 1, 9, 9)
    with torch.no_grad():
        ref = model(x)
        out = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
