import torch
import torch.nn.functional as F

from dnas.relax import make_relaxation, node_slices
from dnas.relax.partial import PartialMixedOp, channel_shuffle, normalized_edge_weights
from dnas.relax.softmax import SoftmaxMixedOp
from dnas.spaces.darts import DartsSpace, derive_cell
from dnas.supernet import Supernet
from dnas.ops import DARTS_PRIMITIVES

P = DARTS_PRIMITIVES


def _net(relax, **kw):
    torch.manual_seed(0)
    return Supernet(DartsSpace(), make_relaxation(relax, **kw), C=8, layers=3, num_classes=10, in_channels=1)


def test_softmax_mixed_op_is_weighted_sum_of_candidates():
    torch.manual_seed(0)
    op = SoftmaxMixedOp(4, 1, P).eval()
    x = torch.randn(2, 4, 6, 6)
    w = F.softmax(torch.randn(len(P)), -1)
    expected = sum(w[i] * op.ops.ops[i](x) for i in range(len(P)))
    assert torch.allclose(op(x, w), expected, atol=1e-6)
    one_hot = torch.zeros(len(P))
    one_hot[P.index("skip_connect")] = 1.0
    assert torch.allclose(op(x, one_hot), x)


def test_partial_op_processes_one_kth_of_channels_and_shuffles():
    torch.manual_seed(0)
    op = PartialMixedOp(8, 1, P, k=4).eval()
    convs = [m for m in op.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.in_channels == 2 for c in convs)  # ops see C/K channels
    x = torch.randn(2, 8, 6, 6)
    w = torch.zeros(len(P))
    w[P.index("skip_connect")] = 1.0
    y = op(x, w)
    # identity on the active part + bypass = a pure channel permutation of x
    assert torch.allclose(y, channel_shuffle(x, 4))
    assert sorted(y.sum((0, 2, 3)).tolist()) == sorted(x.sum((0, 2, 3)).tolist())
    red = PartialMixedOp(8, 2, P, k=4).eval()
    assert red(x, w).shape == (2, 8, 3, 3)


def test_channel_shuffle_is_a_permutation():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_edge_normalization_sums_to_one_per_node():
    beta = torch.randn(14)
    w = normalized_edge_weights(beta, 4)
    for s in node_slices(4):
        assert abs(w[s].sum().item() - 1) < 1e-6
    assert [s.stop - s.start for s in node_slices(4)] == [2, 3, 4, 5]


def test_supernet_forward_backward_reaches_arch_params():
    for relax in ("darts", "pc"):
        net = _net(relax)
        x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
        loss = F.cross_entropy(net(x), y)
        grads = torch.autograd.grad(loss, net.arch_parameters())
        assert len(grads) == (4 if relax == "pc" else 2)
        assert all(g.abs().sum() > 0 for g in grads)
        arch = {id(p) for p in net.arch_parameters()}
        assert not any(id(p) in arch for p in net.weights())


def test_derivation_follows_reference_rule():
    # node 0 (edges 0,1): both kept; strongest non-none op per edge
    # node 1 (edges 2,3,4): edge 3 has a huge 'none' weight but it must not count
    W = torch.full((14, 8), 0.01)
    W[0, P.index("sep_conv_3x3")] = 0.9
    W[1, P.index("max_pool_3x3")] = 0.5
    W[3, P.index("none")] = 0.99
    W[2, P.index("dil_conv_5x5")] = 0.6
    W[4, P.index("skip_connect")] = 0.7
    gene = derive_cell(W, P, 4)
    assert gene[:2] == [("sep_conv_3x3", 0), ("max_pool_3x3", 1)]
    assert gene[2:4] == [("skip_connect", 2), ("dil_conv_5x5", 0)]
    assert len(gene) == 8 and all(op != "none" for op, _ in gene)


def test_pc_derivation_multiplies_edge_weights():
    net = _net("pc")
    with torch.no_grad():
        net.alpha_normal.zero_()
        net.alpha_normal[:, P.index("sep_conv_3x3")] = 5.0
        net.alpha_normal[0, P.index("avg_pool_3x3")] = 6.0  # edge 0: strongest op is avg_pool
        net.beta_normal.zero_()
        net.beta_normal[2] = -10.0  # node 1, edge from input 0 suppressed by beta
    g = net.genotype()
    assert ("avg_pool_3x3", 0) in g.normal[:2]
    assert 0 not in [i for _, i in g.normal[2:4]]


def test_random_genotype_is_valid_seeded_and_never_none():
    from dnas.spaces.darts import random_genotype

    gs = [random_genotype(s) for s in range(20)]
    assert random_genotype(3) == gs[3]
    assert len({g.hash() for g in gs}) == 20
    for g in gs:
        g.validate()
        assert all(op != "none" for op, _ in g.normal + g.reduce)
        for i in range(4):  # two distinct inputs per node
            assert g.normal[2 * i][1] != g.normal[2 * i + 1][1]
