"""NB201 space: the arch string, JSON form, neighbourhood, and the evaluation network's
parameter count against every shipped benchmark record."""
from __future__ import annotations

import json
import random
from importlib import resources

import pytest
import torch

from dnas.errors import DnasError, GenotypeError
from dnas.spaces.nb201 import (
    NB201_EDGES,
    NB201_OPS,
    NB201Arch,
    all_archs,
    build_nb201_network,
    count_params,
    nb201_param_count,
    search_cell,
)

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _records() -> list[dict]:
    return json.loads(resources.files("dnas.resources").joinpath("nb201_cifar10.json").read_text())


def test_parse_round_trip_and_edge_order():
    a = NB201Arch.parse(ARCH)
    assert str(a) == ARCH
    assert a.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")
    assert list(a.edges())[2] == (1, 2, "avg_pool_3x3")
    assert NB201Arch.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert a.to_dict()["space"] == "nb201" and a.to_dict()["format"] == "dnas.genotype"
    assert a.hash() == NB201Arch.parse(ARCH).hash() and len(a.hash()) == 16
    assert {a: 1}[NB201Arch.parse(ARCH)] == 1


@pytest.mark.parametrize(
    "bad, words",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "3 nodes"),
        (ARCH.replace("avg_pool_3x3", "max_pool_3x3"), "unknown op 'max_pool_3x3'"),
        (ARCH.replace("avg_pool_3x3~1", "avg_pool_3x3~0"), "input 1"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "needs 2 inputs"),
        (ARCH.replace("|+|skip", "+|skip").replace("avg_pool_3x3~1|", "avg_pool_3x3~1"), "node 2"),
        (ARCH.replace("skip_connect~2", "skip_connect2"), "op~input"),
        ("", "3 nodes"),
    ],
)
def test_malformed_strings_raise_one_line_error(bad, words):
    with pytest.raises(GenotypeError) as e:
        NB201Arch.parse(bad)
    msg = str(e.value)
    assert words in msg and "\n" not in msg
    assert isinstance(e.value, DnasError)


def test_bad_json_and_op_tuple():
    with pytest.raises(GenotypeError, match="arch: missing"):
        NB201Arch.from_dict({"format": "dnas.genotype", "space": "nb201"})
    with pytest.raises(GenotypeError, match="space"):
        NB201Arch.from_dict({"space": "darts", "arch": ARCH})
    with pytest.raises(GenotypeError, match="6 edge ops"):
        NB201Arch(("none",) * 5)


def test_space_enumeration_neighbours_and_sampling():
    every = all_archs()
    assert len(every) == 15625 == len(set(every))
    assert every[NB201Arch.parse(ARCH).index()] == NB201Arch.parse(ARCH)
    a = NB201Arch.parse(ARCH)
    nb = a.neighbours()
    assert len(nb) == 24 == len(set(nb)) and a not in nb
    assert all(sum(x != y for x, y in zip(a.ops, n.ops)) == 1 for n in nb)
    assert NB201Arch.random(3) == NB201Arch.random(3)
    assert len({NB201Arch.random(s) for s in range(20)}) > 15


def test_search_cell_and_from_weights():
    cell = search_cell()
    assert cell.edges == NB201_EDGES and cell.candidates == NB201_OPS and cell.nodes == 4
    assert cell.incoming(3) == [3, 4, 5]
    w = torch.zeros(6, 5)
    for k, op in enumerate(NB201Arch.parse(ARCH).ops):
        w[k, NB201_OPS.index(op)] = 1.0
    assert NB201Arch.from_weights(w) == NB201Arch.parse(ARCH)
    x = torch.randn(2, 8, 6, 6)
    for name in cell.candidates:
        assert cell.op_factory(name, 8, 1, True)(x).shape == x.shape


def test_network_forward_and_backward():
    torch.manual_seed(0)
    net = build_nb201_network(ARCH, C=8, N=1, num_classes=7)
    x = torch.randn(4, 3, 32, 32)
    out = net(x)
    assert out.shape == (4, 7)
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_params_equal_all_shipped_records():
    """The evaluation network reproduces the benchmark's params_m for all 725 records: the fast
    per-op count for every record, and a full network build for a seeded sample of 60 (building
    all 725 takes ~15-30 s on a shared 2-core machine)."""
    recs = _records()
    assert len(recs) == 725
    bad = [(r["arch"], r["params_m"]) for r in recs if round(nb201_param_count(r["arch"]) / 1e6, 6) != r["params_m"]]
    assert not bad, bad[:3]
    for r in random.Random(0).sample(recs, 60):
        n = count_params(build_nb201_network(r["arch"], num_classes=10))
        assert round(n / 1e6, 6) == r["params_m"] and n == nb201_param_count(r["arch"]), r["arch"]
    # other widths / depths / class counts agree with the built network too
    a = NB201Arch.random(1)
    assert nb201_param_count(a, C=8, N=2, num_classes=7, in_channels=1) == count_params(
        build_nb201_network(a, C=8, N=2, num_classes=7, in_channels=1)
    )


def test_registered_in_network_registry():
    from dnas.models import NETWORKS

    cls = NETWORKS.get("nb201")
    net = cls(ARCH, C=8, layers=3, num_classes=5)
    x = torch.randn(2, 3, 16, 16)
    net.train()
    logits, aux = net(x)
    assert logits.shape == (2, 5) and aux is None
    net.eval()
    assert net(x).shape == (2, 5)
    assert count_params(cls(ARCH)) == count_params(build_nb201_network(ARCH))  # defaults: C=16, 15 cells
    with pytest.raises(DnasError, match="multiple of 3"):
        cls(ARCH, layers=8)
