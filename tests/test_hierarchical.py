"""Hierarchical search (H-DAS): genotype format v2, stage derivation, the depth term, evaluation
networks, and short real searches of the three presets on digits (complete, interrupt, resume)."""
import copy
import json

import pytest
import torch

import dnas
from typer.testing import CliRunner

from dnas.cli import _load_commands, app
from dnas.config import make_config
from dnas.cost import count_params
from dnas.errors import ConfigError, GenotypeError
from dnas.genotype import PUBLISHED, CellGene, Genotype, StageGene, load_genotype
from dnas.models import NETWORKS, build_network
from dnas.run import RunDir, seed_everything
from dnas.spaces.hierarchical import LINK_PRIMITIVES, HierarchicalSpace, derive_stage, expected_depths, link_inputs
from dnas.strategies.bilevel import Architect, build_supernet

# Tiny but real: digits at 8 px, narrow cells with 2 nodes and 4 candidate ops, 1-2 cells per stage.
TINY = dict(
    data="digits", image_size=8, init_channels=4, batch_size=32, max_samples=128, epochs=2, warmup_epochs=1,
    threads=1, steps=2, multiplier=2, primitives=["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"], layers=5,
)
PRESET_EXTRA = {"hdas-stage": dict(cells_per_stage=2), "hdas-cell": {}, "hdas": dict(cells_per_stage=2)}


def _stage_genotype() -> Genotype:
    v2, v1, pc = PUBLISHED["DARTS_V2"], PUBLISHED["DARTS_V1"], PUBLISHED["PC_DARTS_cifar"]
    cells = [CellGene(g.normal, g.normal_concat) for g in (v2, v1, pc)]
    reds = [CellGene(g.reduce, g.reduce_concat) for g in (v2, pc)]
    stages = (
        StageGene([[("skip_connect", 0), ("skip_connect", 1)], [("max_pool_3x3", 1), ("skip_connect", 2)]], [2, 3]),
        StageGene([[("avg_pool_3x3", 1)]], [1, 2]),
        StageGene([[("skip_connect", 0), ("max_pool_3x3", 1)], [("skip_connect", 2)], [("avg_pool_3x3", 2), ("skip_connect", 3)]], [3, 4]),
    )
    return Genotype(v2.normal, v2.normal_concat, v2.reduce, v2.reduce_concat, "hierarchical",
                    stage_normal=cells, stage_reduce=reds, stages=stages)


# ---------------------------------------------------------------------- genotype format
def test_version_1_files_still_load_and_plain_genotypes_stay_version_1(tmp_path):
    v1 = {"format": "dnas.genotype", "version": 1, "space": "darts",
          "normal": [list(e) for e in PUBLISHED["DARTS_V2"].normal], "normal_concat": [2, 3, 4, 5],
          "reduce": [list(e) for e in PUBLISHED["DARTS_V2"].reduce], "reduce_concat": [2, 3, 4, 5]}
    p = tmp_path / "old.json"
    p.write_text(json.dumps(v1))
    g = load_genotype(p)
    assert g == PUBLISHED["DARTS_V2"] and not g.is_hierarchical
    assert g.to_dict()["version"] == 1 and "cells" not in g.to_dict() and "stages" not in g.to_dict()
    assert g.hash() == "77a0078a2018789b"  # the hash of every stored v1 result is unchanged
    with pytest.raises(GenotypeError, match="need version 2"):
        Genotype.from_dict({**v1, "stages": []})
    with pytest.raises(GenotypeError, match="reads up to 2"):
        Genotype.from_dict({**v1, "version": 3})


def test_hierarchical_genotype_round_trips_and_validates(tmp_path):
    g = _stage_genotype().with_meta(method="test")
    assert g.is_hierarchical and g.to_dict()["version"] == 2
    g.save(tmp_path / "g.json")
    back = load_genotype(tmp_path / "g.json")
    assert back == g and back.hash() == g.hash() and back.meta["method"] == "test"
    assert back.stages[2].num_cells == 3 and back.stage_genotype(1).normal == PUBLISHED["DARTS_V1"].normal
    assert back.stage_genotype(1).reduce == PUBLISHED["PC_DARTS_cifar"].reduce
    assert _stage_genotype().hash() != PUBLISHED["DARTS_V2"].hash()
    d = g.to_dict()
    d["stages"][0]["links"][1][0] = ["skip_connect", 3]  # cell 1 cannot read state 3
    with pytest.raises(GenotypeError, match=r"stages\[0\]\.links\[1\]\[0\]: state 3 out of range"):
        Genotype.from_dict(d)
    d = g.to_dict()
    d["cells"]["reduce"] = d["cells"]["reduce"][:1]
    with pytest.raises(GenotypeError, match=r"cells\.reduce: needs one cell per reduction"):
        Genotype.from_dict(d)


# ---------------------------------------------------------------------- evaluation networks
def test_hierarchical_networks_build_and_run_forward():
    g = _stage_genotype()
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 16)
    net = build_network(g, net="cifar", C=4, layers=8, num_classes=10, in_channels=1, auxiliary=True, drop_path_prob=0.2)
    assert type(net).__name__ == "HierarchicalCIFAR" and net.num_cells == 2 + 1 + 3 + 2  # the layouts fix the depth
    logits, aux = net(x)
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    (logits.sum() + aux.sum()).backward()
    net.eval()
    assert net(x).shape == (2, 10) and torch.isfinite(net(x)).all()
    inet = build_network(g, net="imagenet", C=8, layers=8, num_classes=5, in_channels=1).eval()
    assert inet(torch.randn(2, 1, 32, 32)).shape == (2, 5)
    # stage-specific cells without layouts: DARTS stacking with `layers` cells
    cells_only = Genotype(g.normal, g.normal_concat, g.reduce, g.reduce_concat, "hierarchical",
                          stage_normal=g.stage_normal, stage_reduce=g.stage_reduce)
    stacked = build_network(cells_only, net="cifar", C=4, layers=8, num_classes=10, in_channels=1)
    assert stacked.num_cells == 8 and stacked.eval()(x).shape == (2, 10)
    # each stage really uses its own cell: stage 2's cells are DARTS_V1 cells
    assert stacked.cells[3].op_names == [o for o, _ in PUBLISHED["DARTS_V1"].normal]
    assert stacked.cells[0].op_names == [o for o, _ in PUBLISHED["DARTS_V2"].normal]


def test_plain_genotype_in_hierarchical_network_equals_darts_network():
    g = PUBLISHED["DARTS_V2"]
    with torch.device("meta"):
        ref = NETWORKS.get("cifar")(g, C=36, layers=20, num_classes=10, auxiliary=True)
        hier = NETWORKS.get("hier-cifar")(g, C=36, layers=20, num_classes=10, auxiliary=True)
        iref = NETWORKS.get("imagenet")(g, C=48, layers=14, num_classes=1000, auxiliary=True)
        ihier = NETWORKS.get("hier-imagenet")(g, C=48, layers=14, num_classes=1000, auxiliary=True)
    assert count_params(hier) == count_params(ref) == 3349342
    assert count_params(ihier) == count_params(iref)
    assert [n for n, _ in hier.named_parameters()][-4:] == [n for n, _ in ref.named_parameters()][-4:]


# ---------------------------------------------------------------------- stage level
def _onehot_rows(rows, primitives=LINK_PRIMITIVES):
    """(inputs, ops) weights from rows of {op: weight} (the rest share what is left)."""
    out = torch.zeros(len(rows), len(primitives))
    for j, row in enumerate(rows):
        for op, w in row.items():
            out[j, primitives.index(op)] = w
    return out


def test_stage_derivation_from_hand_set_weights_keeps_the_strongest_links():
    assert link_inputs(0, 3) == [0, 1] and link_inputs(1, 3) == [0, 1, 2] and link_inputs(3, 3) == [2, 3, 4]
    W = [
        _onehot_rows([{"max_pool_3x3": 0.4, "none": 0.6}, {"skip_connect": 0.7, "avg_pool_3x3": 0.3}]),
        # input 0 is mostly `none` but its best real op (0.2) still beats input 1's (0.15)
        _onehot_rows([{"none": 0.8, "max_pool_3x3": 0.2}, {"skip_connect": 0.15, "none": 0.85}, {"avg_pool_3x3": 0.9}]),
        _onehot_rows([{"max_pool_3x3": 0.5}, {"skip_connect": 0.1, "none": 0.9}, {"skip_connect": 0.6, "max_pool_3x3": 0.4}]),
    ]
    st = derive_stage(W, LINK_PRIMITIVES, window=3, keep=2)
    assert st.links == (
        (("max_pool_3x3", 0), ("skip_connect", 1)),
        (("max_pool_3x3", 0), ("avg_pool_3x3", 2)),
        (("max_pool_3x3", 1), ("skip_connect", 3)),
    )
    assert st.concat == (3, 4)
    short = derive_stage(W, LINK_PRIMITIVES, window=3, keep=1, cells_kept=2)
    assert short.links == ((("skip_connect", 1),), (("avg_pool_3x3", 2),)) and short.concat == (2, 3)


def test_supernet_genotype_follows_hand_set_link_and_stage_end_weights():
    cfg = make_config("hdas-stage", overrides=dict(TINY, cells_per_stage=3, stage_end_candidates=2))
    torch.manual_seed(0)
    net = build_supernet(cfg, 10, 1)
    big = 5.0
    with torch.no_grad():
        for a in net.alpha_links:
            a.zero_()
        for s in range(3):
            cells = net._stage_links(s)
            cells[0][0, LINK_PRIMITIVES.index("avg_pool_3x3")] = big  # cell 0 <- input 0
            cells[0][1, LINK_PRIMITIVES.index("skip_connect")] = big / 2
            cells[1][2, LINK_PRIMITIVES.index("max_pool_3x3")] = big  # cell 1 <- cell 0 (state 2)
            cells[1][0, LINK_PRIMITIVES.index("skip_connect")] = big / 2
            cells[2][2, LINK_PRIMITIVES.index("skip_connect")] = big  # cell 2 <- cell 1 (state 3)
            cells[2][1, LINK_PRIMITIVES.index("avg_pool_3x3")] = big / 2
            net.beta_end[s].copy_(torch.tensor([1.0, 0.0] if s == 1 else [0.0, 1.0]))  # stage 2 ends after 2 cells
    g = net.genotype()
    assert g.stage_normal is None and g.normal == PUBLISHED["DARTS_V2"].normal
    full = ((("avg_pool_3x3", 0), ("skip_connect", 1)), (("skip_connect", 0), ("max_pool_3x3", 2)),
            (("avg_pool_3x3", 2), ("skip_connect", 3)))
    assert g.stages[0].links == full and g.stages[0].concat == (3, 4)
    assert g.stages[1].links == full[:2] and g.stages[1].concat == (2, 3)
    assert copy.deepcopy(net).genotype() == g  # copyable (cost counting and export deep-copy models)
    assert build_network(g, C=4, layers=5, num_classes=10, in_channels=1).eval()(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_depth_term_moves_link_weights_toward_deeper_graphs():
    """Toy problem: optimising -D alone on a 4-cell stage turns the graph into a chain."""
    torch.manual_seed(0)
    space = HierarchicalSpace(search_cells=False, sizes=(4, 1, 1))
    alphas = [torch.nn.Parameter(1e-3 * torch.randn(len(space.inputs(k)), len(LINK_PRIMITIVES))) for k in range(4)]
    opt = torch.optim.Adam(alphas, lr=0.1)

    def depth():
        return expected_depths([torch.softmax(a, -1) for a in alphas], LINK_PRIMITIVES, 3).mean()

    d0 = depth().item()
    for _ in range(80):
        opt.zero_grad()
        (-depth()).backward()
        opt.step()
    d1 = depth().item()
    assert 1.5 < d0 < 1.9  # uniform links: about (1 + 4/3 + 16/9 + ...)/4
    assert d1 > 2.3 and d1 <= 2.5 + 1e-6  # a chain has depths 1, 2, 3, 4: mean 2.5
    st = space.derive_stage([torch.softmax(a, -1).detach() for a in alphas])
    for k, links in enumerate(st.links):
        assert (k + 1) in [i for _, i in links], f"cell {k} lost its predecessor: {links}"


def test_depth_step_in_the_architect_deepens_the_searched_stages():
    """The real hook: an extra architecture step on -(D1+D2+D3) after each validation step."""
    from dnas.data import load_dataset

    d = load_dataset("digits")
    x = d.x[:64]  # digits are 8x8 grey images
    y = d.y[:64]
    depths = {}
    for coef in (0.0, 1.0):
        cfg = make_config("hdas-stage", overrides=dict(TINY, cells_per_stage=3, depth_coef=coef, stage_end_search=False, arch_lr=0.1))
        seed_everything(0)
        net = build_supernet(cfg, 10, 1)
        arch = Architect(net, cfg)
        assert ("hdas" in arch.extra_steps) == (coef > 0)
        w_opt = torch.optim.SGD(net.weights(), lr=0.01)
        for i in range(6):
            arch.step(x[:32], y[:32], x[32:], y[32:], 0.01, w_opt)
        depths[coef] = net.expected_depths().sum().item()
        if coef:
            assert arch.last_terms["hdas/depth"] > 0
    # Margin measured 0.21 with NCHW kernels and 0.19 with dnas.ops' channels_last kernels: Adam
    # (arch_lr 0.1) turns float-level differences in near-zero link gradients into lr-sized
    # steps, so the exact gain moves between kernel implementations; without the depth step it is 0.
    assert depths[1.0] > depths[0.0] + 0.1, depths


# ---------------------------------------------------------------------- real searches
class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("preset", ["hdas-stage", "hdas-cell", "hdas"])
def test_preset_search_completes_and_resumes_to_the_same_result(preset, tmp_path, monkeypatch):
    overrides = dict(TINY, **PRESET_EXTRA[preset])
    full = dnas.search(preset=preset, out=tmp_path / "full", **overrides)
    g = full.genotype
    assert g.is_hierarchical and load_genotype(full.run_dir) == g
    assert (g.stages is not None) == (preset != "hdas-cell")
    assert (g.stage_normal is not None) == (preset != "hdas-stage")
    if preset == "hdas-stage":
        assert g.normal == PUBLISHED["DARTS_V2"].normal  # the fixed cell
    if preset != "hdas-cell":
        assert "hdas/depth" in full.history[-1]["arch_terms"] and "depth" in full.history[-1]["alphas"]
    net = build_network(g, C=4, layers=5, num_classes=10, in_channels=1).eval()
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)

    # interrupt after the first epoch's checkpoint, then resume from the run directory
    original = RunDir.save_checkpoint

    def save_then_stop(self, state):
        original(self, state)
        raise _Interrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", save_then_stop)
    with pytest.raises(_Interrupt):
        dnas.search(preset=preset, out=tmp_path / "cut", **overrides)
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    assert not (tmp_path / "cut" / "genotype.json").exists()
    resumed = dnas.search(resume=tmp_path / "cut")
    assert resumed.genotype == g
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_stage_search_for_a_given_cell_then_show(tmp_path):
    _load_commands()
    cli = CliRunner()
    out = tmp_path / "run"
    args = ["search", "--preset", "hdas-stage", "--cell", "DARTS_V1", "--data", "digits", "--image-size", "8",
            "--init-channels", "4", "--layers", "5", "--batch-size", "32", "--max-samples", "120", "--epochs", "1",
            "--out", str(out), "--quiet"]
    r = cli.invoke(app, args)
    assert r.exit_code == 0, r.output
    g = load_genotype(out)
    assert g.normal == PUBLISHED["DARTS_V1"].normal and g.stages is not None
    r = cli.invoke(app, ["show", str(out), "--json"])
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert shown["genotype_hash"] == g.hash() and shown["params"] > 0 and shown["macs"] > 0
    r = cli.invoke(app, ["show", str(out)])
    assert r.exit_code == 0 and "stage 1 layout" in r.output


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="cell: a fixed cell is only used by the stage-level search"):
        make_config("hdas", overrides=dict(cell="DARTS_V2"))
    with pytest.raises(ConfigError, match="every stage needs at least one normal cell"):
        build_supernet(make_config("hdas-cell", overrides=dict(TINY, layers=3)), 10, 1)
    with pytest.raises(ConfigError, match="link_primitives"):
        make_config("hdas", overrides=dict(link_primitives=["max_pool_3x3", "conv_9x9"]))


@pytest.mark.parametrize("relaxation", ["pc", "gdas"])
def test_other_relaxations_drive_both_levels(relaxation):
    """Cells and links go through the Relaxation interface, so any registered one works."""
    from dnas.relax import RELAXATIONS

    if relaxation not in RELAXATIONS:
        pytest.skip(f"relaxation {relaxation!r} not available")
    cfg = make_config("hdas", overrides=dict(TINY, cells_per_stage=2, relaxation=relaxation, link_relaxation=relaxation))
    torch.manual_seed(0)
    net = build_supernet(cfg, 10, 1)
    if relaxation == "pc":
        assert net.beta_normal is not None and len(net.beta_normal) == 3  # per-stage edge normalisation
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    net.relax.on_epoch(0, 2)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, net.arch_parameters(), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads[:5])  # cell alphas get gradients
    assert any(g is not None and g.abs().sum() > 0 for g in grads[-9:])  # so do links / stage ends
    g = net.genotype()
    assert g.stage_normal is not None and g.stages is not None
