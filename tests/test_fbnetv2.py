"""FBNetV2 DMaskingNAS: masked channel search equals the plain network of the chosen widths,
resolution subsampling and place-back, constant weights as the space grows, exact expected
params/MACs, the genotype type, and a real tiny `dnas search --space fbnetv2` with a cost term
and resume."""
import json

import pytest
import torch

import dnas
from dnas.config import make_config
from dnas.cost import count_macs, count_params
from dnas.errors import GenotypeError
from dnas.relax import make_relaxation
from dnas.relax.masking import channel_mask, prefix_masks
from dnas.run import seed_everything
from dnas.searchdata import search_batches
from dnas.spaces.mobile import (
    MobileGenotype,
    MobileNetwork,
    MobileSpace,
    MobileSupernet,
    build_mobile_network,
    extract_subnet,
    load_mobile_genotype,
    place_back,
)
from dnas.strategies.bilevel import Architect, build_supernet

TINY = dict(data="digits", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=240, epochs=2,
            warmup_epochs=1, threads=1, space="fbnetv2", relaxation="fbnetv2", guard="off")


def _supernet(seed=0, **kw):
    torch.manual_seed(seed)
    space = MobileSpace.make(stem=4, layers=4, input_size=12, in_channels=1, **kw)
    return MobileSupernet(space, make_relaxation("fbnetv2"))


def _fix(m, widths_idx, res_idx):
    """All architecture weight on one width per block and one resolution (exact one-hot)."""
    with torch.no_grad():
        m.alpha_width.fill_(-1e4)
        m.alpha_res.fill_(-1e4)
        for b, k in enumerate(widths_idx):
            m.alpha_width[b, k] = 0.0
        m.alpha_res[0, res_idx] = 0.0


def test_prefix_masks_and_their_weighted_sum():
    M = prefix_masks([2, 3, 5])
    assert M.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    mask = channel_mask(torch.tensor([0.5, 0.25, 0.25]), M).flatten()
    assert torch.allclose(mask, torch.tensor([1.0, 1.0, 0.5, 0.25, 0.25]))


@pytest.mark.parametrize("widths_idx", [[0, 1, 2, 3], [3, 3, 3, 3], [2, 0, 3, 1]])
def test_masked_channels_with_one_width_equal_the_plain_network_exactly(widths_idx):
    m = _supernet()
    x = torch.randn(6, 1, 12, 12)
    _fix(m, widths_idx, 0)  # full resolution
    g = m.genotype()
    assert g.channels == [m.space.blocks[b][4][k] for b, k in enumerate(widths_idx)]
    plain = extract_subnet(m, g)
    for mode in (False, True):  # eval (running stats) and train (batch stats, Gumbel noise)
        m.train(mode)
        plain.train(mode)
        out = plain(x)
        out = out[0] if isinstance(out, tuple) else out
        assert torch.equal(m(x), out)


@pytest.mark.parametrize("res_idx", [1, 2])
def test_resolution_subsampling_equals_the_plain_network_at_that_resolution(res_idx):
    m = _supernet().eval()
    x = torch.randn(3, 1, 12, 12)
    _fix(m, [1, 2, 0, 3], res_idx)
    g = m.genotype()
    assert g.resolution == m.space.resolutions[res_idx] < 12
    plain = extract_subnet(m, g).eval()
    assert torch.allclose(m(x), plain(x), atol=1e-5)
    f = torch.randn(2, 3, 2, 2)
    placed = place_back(f, 3)
    assert placed.shape == (2, 3, 3, 3) and torch.allclose(placed.mean((2, 3)), f.mean((2, 3)))


def test_weights_do_not_grow_with_the_number_of_width_options():
    few = _supernet(expansions=(1, 4))
    many = _supernet(expansions=(1, 1.5, 2, 2.5, 3, 3.5, 4))
    assert sum(p.numel() for p in few.weights()) == sum(p.numel() for p in many.weights())
    assert many.alpha_width.shape[1] == 7 and few.alpha_width.shape[1] == 2


def test_expected_params_and_macs_of_a_one_hot_distribution_are_exact():
    m = _supernet()
    _fix(m, [3, 0, 2, 1], 1)
    net = extract_subnet(m, m.genotype())
    assert m.expected_cost("params").item() * 1e6 == pytest.approx(count_params(net), abs=0.5)
    assert m.expected_cost("macs").item() * 1e6 == pytest.approx(count_macs(net, (1, 12, 12)), abs=0.5)
    with torch.no_grad():
        m.alpha_width.zero_()
    e = m.expected_cost("macs")
    (g,) = torch.autograd.grad(e, [m.alpha_width])
    assert (g > 0).any()  # wider options cost more: the gradient pushes their logits down


def test_genotype_round_trip_and_errors(tmp_path):
    g = _supernet().genotype(seed=0)
    g.save(tmp_path / "g.json")
    back = load_mobile_genotype(tmp_path / "g.json")
    assert back == g and back.hash() == g.hash() and back.meta == {"seed": 0}
    assert json.loads((tmp_path / "g.json").read_text())["space"] == "fbnetv2"
    net = build_mobile_network(tmp_path / "g.json", num_classes=10, in_channels=1).eval()
    assert net(torch.randn(2, 1, 12, 12)).shape == (2, 10)
    with pytest.raises(GenotypeError, match="resolution"):
        MobileGenotype(4, ((4, 1, 3, 8),), 20, 12)


def test_lambda_lowers_expected_macs_in_real_architecture_steps():
    def run(lam):
        cfg = make_config(overrides={**TINY, "cost_objective": "macs", "cost_lambda": lam, "arch_lr": 0.05})
        seed_everything(0)
        model = build_supernet(cfg, 10, 1)
        arch = Architect(model, cfg)
        train_b, val_b, _, _ = search_batches(cfg)
        w_opt = torch.optim.SGD(model.weights(), lr=0.05)
        for (xt, yt), (xv, yv) in list(zip(train_b, val_b))[:4]:
            arch.step(xt, yt, xv, yv, 0.05, w_opt)
        return model.expected_cost("macs").item()

    seed_everything(0)
    start = build_supernet(make_config(overrides=TINY), 10, 1).expected_cost("macs").item()
    low, free = run(50.0), run(0.0)
    assert low < start * 0.95 and low < free * 0.95, (start, low, free)


def test_search_space_fbnetv2_runs_with_a_cost_term_and_resumes(tmp_path):
    r = dnas.search(out=tmp_path / "a", cost_objective="params", cost_lambda=1.0, **TINY)
    g = json.loads((r.run_dir / "genotype.json").read_text())
    assert g["space"] == "fbnetv2" and len(g["channels"]) == 3 and g["resolution"] in (8, 6, 4)
    ev = [json.loads(l) for l in (r.run_dir / "events.jsonl").read_text().splitlines() if '"epoch"' in l]
    assert ev[-1]["arch_terms"]["cost"] > 0
    back = dnas.search(resume=r.run_dir)  # nothing left to run: same genotype from the checkpoint
    assert back.genotype.to_dict(with_meta=False) == r.genotype.to_dict(with_meta=False)
    # the generic readers take it too: load_genotype, build_network, and so the trainer
    from dnas.api import train
    from dnas.genotype import load_genotype
    from dnas.models import build_network

    g2 = load_genotype(r.run_dir / "genotype.json")
    assert g2 == r.genotype
    assert isinstance(build_network(g2, C=16, layers=8, num_classes=10, in_channels=1), MobileNetwork)
    t = train(r.run_dir, out=tmp_path / "train", data="digits", image_size=8, epochs=1, threads=1)
    assert t.params == count_params(build_mobile_network(r.genotype, 10, 1)) and 0.0 < t.test_accuracy <= 1.0
