"""The generalized space (structure x operators), its networks, short training, and the
alternating two-BOHB search with resume, all on real digits data."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from dnas.errors import ConfigError
from dnas.spaces.generalized import (
    ACTIVATIONS,
    BLOCKS,
    INITS,
    GeneralizedEvaluator,
    build_generalized_network,
    operator_space,
    stage_specs,
    structure_space,
)

TINY = dict(max_stages=2, max_depth=2, widths=(4, 8, 16), max_train_samples=300)


def test_structure_space_activates_stage_entries_only_for_existing_stages():
    cs = structure_space(3, max_depth=2, widths=(8, 16), seed=0)
    seen = set()
    for cfg in cs.sample_configuration(40):
        d = dict(cfg)
        n = d["num_stages"]
        seen.add(n)
        assert all((f"depth_{k}" in d) == (k <= n) and (f"width_{k}" in d) == (k <= n) for k in range(1, 4))
    assert seen == {1, 2, 3}
    ops = operator_space(3)
    assert {h.name for h in ops.values()} == {f"{p}_{k}" for p in ("op", "act", "init") for k in (1, 2, 3)}
    assert set(ops["act_1"].choices) == set(ACTIVATIONS) >= {"relu", "gelu", "silu", "hardswish"}
    assert set(ops["init_2"].choices) == set(INITS) >= {"kaiming_normal", "xavier_uniform", "orthogonal"}


def test_networks_are_built_as_described_and_run_forward():
    structure = {"num_stages": 3, "depth_1": 2, "width_1": 8, "depth_2": 1, "width_2": 16, "depth_3": 1, "width_3": 4}
    operators = {"op_1": "conv3x3", "act_1": "hardswish", "init_1": "orthogonal",
                 "op_2": "mbconv3", "act_2": "gelu", "init_2": "xavier_uniform",
                 "op_3": "sep_conv5x5", "act_3": "silu", "init_3": "kaiming_normal"}
    net = build_generalized_network(structure, operators, in_channels=1, num_classes=10, seed=0)
    assert net(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    assert [len(s) for s in net.stages] == [2, 1, 1]
    acts = [type(m) for s in net.stages for m in s.modules() if type(m) in (nn.Hardswish, nn.GELU, nn.SiLU)]
    assert set(acts) == {nn.Hardswish, nn.GELU, nn.SiLU}
    # stage 1 is orthogonal: each output filter of its 3x3 convs has unit norm and they are orthogonal
    w = net.stages[0][0].body[0].weight.detach().flatten(1)
    assert torch.allclose(w @ w.T, torch.eye(w.shape[0]), atol=1e-5)
    assert net.stages[1][0].body[0].out_channels == 3 * 8  # MBConv expansion 3
    # same seed, same weights; every block type builds
    again = build_generalized_network(structure, operators, 1, 10, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters()))
    for op in BLOCKS:
        n = build_generalized_network({"num_stages": 1, "depth_1": 2, "width_1": 4},
                                      {"op_1": op, "act_1": "relu", "init_1": "default"}, 3, 2)
        assert n(torch.rand(2, 3, 8, 8)).shape == (2, 2)


def test_bad_configurations_name_the_field():
    with pytest.raises(ConfigError, match="structure.depth_2"):
        stage_specs({"num_stages": 2, "depth_1": 1, "width_1": 8, "width_2": 8},
                    {f"{p}_{k}": v for k in (1, 2) for p, v in (("op", "conv3x3"), ("act", "relu"), ("init", "default"))})
    with pytest.raises(ConfigError, match="operators.act_1"):
        stage_specs({"num_stages": 1, "depth_1": 1, "width_1": 8}, {"op_1": "conv3x3", "act_1": "swish9", "init_1": "default"})


def test_short_training_learns_digits_and_is_repeatable():
    ev = GeneralizedEvaluator("digits", seed=0, max_train_samples=400)
    arch = ({"num_stages": 2, "depth_1": 1, "width_1": 8, "depth_2": 1, "width_2": 16},
            {"op_1": "conv3x3", "act_1": "relu", "init_1": "kaiming_normal",
             "op_2": "conv3x3", "act_2": "relu", "init_2": "kaiming_normal"})
    r = ev.evaluate(arch, budget=3)
    assert r.budget == 3 and r.cost["epochs"] == 3 and r.cost["params_m"] > 0
    assert r.accuracy > 40.0  # 10 classes: chance is 10 %
    assert ev.evaluate(arch, budget=3).accuracy == r.accuracy


def _run(tmp_path, name, budget, **kw):
    from dnas.strategies.alternating import search_generalized

    return search_generalized("digits", budget=budget, seed=0, out=tmp_path / name, min_budget=1, max_budget=3,
                              **TINY, **kw)


def test_alternating_search_runs_on_digits_and_resumes_where_it_stopped(tmp_path, monkeypatch):
    full = _run(tmp_path, "full", 26)
    phases = [h["phase"] for h in full.history]
    assert phases[0] == "structure" and "operators" in phases
    assert full.cost <= 26 and full.evaluations == len(full.history)
    # within an operator round the structure is frozen at the incumbent
    for rnd in {h["round"] for h in full.history if h["phase"] == "operators"}:
        assert len({json.dumps(h["structure"], sort_keys=True) for h in full.history if h["round"] == rnd}) == 1
    best = max(h["accuracy"] for h in full.history if h["budget"] == full.budget)
    assert full.accuracy == best > 10.0
    saved = json.loads((tmp_path / "full" / "genotype.json").read_text())
    assert saved["accuracy"] == full.accuracy and saved["space"] == "generalized"

    # kill a second run after 5 evaluations, then resume it: only the missing ones are trained
    class Killed(BaseException):
        pass

    seen = []

    def stop_after_five(rec):
        seen.append(rec)
        if len(seen) == 5:
            raise Killed()

    with pytest.raises(Killed):
        _run(tmp_path, "cut", 26, on_eval=stop_after_five)
    events = [json.loads(line) for line in (tmp_path / "cut" / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "eval" for e in events) == 5

    calls = []
    original = GeneralizedEvaluator.evaluate
    monkeypatch.setattr(GeneralizedEvaluator, "evaluate", lambda self, a, b=None: calls.append(b) or original(self, a, b))
    from dnas.strategies.alternating import resume_generalized

    resumed = resume_generalized(tmp_path / "cut")  # the settings come from its config.yaml
    assert len(calls) == full.evaluations - 5
    key = lambda r: [(h["phase"], h["budget"], h["structure"], h["operators"], h["accuracy"]) for h in r.history]
    assert key(resumed) == key(full)
    assert (resumed.structure, resumed.operators, resumed.accuracy) == (full.structure, full.operators, full.accuracy)

    with pytest.raises(ConfigError, match="settings differ"):
        from dnas.strategies.alternating import search_generalized

        search_generalized("digits", budget=26, seed=1, out=tmp_path / "cut", resume=True, min_budget=1, max_budget=3, **TINY)
