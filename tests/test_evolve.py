"""Network-level evolution: encoding, variation, network construction, a tiny real NSGA-II run on
digits (front, files, resume), retries of failing evaluations, and training a front member."""
import itertools
import json

import numpy as np
import pytest
import torch

from dnas.errors import ConfigError, GenotypeError
from dnas.evolve import NetworkGenotype, NetworkSpace, StageSpec, evolve, load_network_genotype, resolve_blocks
from dnas.evolve.encoding import GENES_PER_STAGE
from dnas.evolve.problem import NetworkProblem, objective_vector
from dnas.genotype import PUBLISHED
from dnas.trials import SerialExecutor

BLOCKS = resolve_blocks(["DARTS_V2", "PC_DARTS_cifar"])
# a tiny but real run: 2 blocks, 2 stages, widths 4-16, 1 epoch on 300 digits images
TINY = dict(data="digits", image_size=None, max_samples=300, blocks=["DARTS_V2", "PC_DARTS_cifar"], population=4,
            generations=2, epochs=1, batch_size=32, lr=0.1, widths=[4, 8, 16], stem_widths=[4, 8], stages=2, max_repeats=2,
            max_reductions=1, seed=0)


def small_space(**kw) -> NetworkSpace:
    args = dict(widths=(4, 8), stem_widths=(4,), stages=2, max_repeats=2, max_reductions=1)
    args.update(kw)
    return NetworkSpace(tuple(b.genotype for b in BLOCKS), **args)


def dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


# ----------------------------------------------------------------------------- encoding
def test_encoding_is_one_to_one_and_round_trips(tmp_path):
    space = small_space()
    valid = [np.array(x) for x in itertools.product(*[range(u + 1) for u in space.upper]) if space.is_valid(x)]
    assert len(valid) == space.size() == 192  # 4 stage choices^2 * 2 blocks^2 * 3 reduction patterns
    nets = [space.decode(x) for x in valid]
    assert len({n.hash() for n in nets}) == len(valid)  # distinct vectors are distinct networks
    for x, net in zip(valid, nets):
        assert np.array_equal(space.encode(net), x)
        back = NetworkGenotype.from_dict(json.loads(json.dumps(net.to_dict())))
        assert back == net and back.hash() == net.hash()
    net = nets[-1]
    net.save(tmp_path / "net.json")
    assert load_network_genotype(tmp_path / "net.json") == net
    assert net.num_reductions <= 1 and net.blocks[0] == PUBLISHED["DARTS_V2"]
    with pytest.raises(ConfigError, match="not a valid network vector"):
        space.decode([0, 0, 0, 0, 1, 0, 0, 0, 1])  # two reductions, space allows one
    with pytest.raises(ConfigError, match="widths"):
        space.encode(NetworkGenotype.make(space.blocks, 4, [StageSpec(0, 1, 6), StageSpec(0, 1, 4)]))


def test_bad_network_genotypes_are_rejected_with_the_field_named():
    good = small_space().decode([0] * 9).to_dict()
    cases = {
        ("stages", 0, "block"): (5, "stages\\[0\\].block"),
        ("stages", 1, "width"): (5, "stages\\[1\\].width"),
        ("stages", 0, "repeats"): (0, "stages\\[0\\].repeats"),
    }
    for (k, i, f), (value, msg) in cases.items():
        d = json.loads(json.dumps(good))
        d[k][i][f] = value
        with pytest.raises(GenotypeError, match=msg):
            NetworkGenotype.from_dict(d)
    with pytest.raises(GenotypeError, match="unknown field"):
        NetworkGenotype.from_dict({**good, "extra": 1})
    bad_block = json.loads(json.dumps(good))
    bad_block["blocks"][1]["normal"][0][0] = "conv_99x99"
    with pytest.raises(GenotypeError, match="blocks\\[1\\]"):
        NetworkGenotype.from_dict(bad_block)
    from dnas.models import build_network

    with pytest.raises(ConfigError, match="network genotype"):
        build_network("DARTS_V2", net="evolved", C=4, layers=2, num_classes=10, in_channels=1)


def test_mutation_and_crossover_keep_networks_valid():
    space = small_space(stages=3, max_repeats=3, widths=(4, 8, 12), stem_widths=(4, 8), max_reductions=1)
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(400):
        a, b = space.random(rng), space.random(rng)
        assert space.is_valid(a) and space.is_valid(b)
        m = space.mutate(a, rng)
        assert space.is_valid(m)
        changed += not np.array_equal(m, a)
        c, d = space.crossover(a, b, rng)
        assert space.is_valid(c) and space.is_valid(d)
        # each unit (stem, whole stage) of a child comes from one parent (repair only clears reduce flags)
        for u in range(4):
            genes = [0] if u == 0 else [1 + GENES_PER_STAGE * (u - 1) + k for k in range(3)]
            assert np.array_equal(c[genes], a[genes]) or np.array_equal(c[genes], b[genes])
        space.decode(m), space.decode(c), space.decode(d)  # all decode to networks
    assert changed > 300  # mutation moves (repair may rarely undo a reduction flag)
    over = np.array([0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1])
    fixed = space.repair(over)
    assert space.is_valid(fixed) and fixed[4] == 1 and fixed[8] == 0 and fixed[12] == 0


def test_evolved_network_equals_the_darts_network_for_the_darts_layout():
    """Stem 3C, stages N@C | R+N@2C | R+N@4C is exactly NetworkCIFAR with 5 layers."""
    from dnas.models import build_network

    C = 4
    g = NetworkGenotype.make([PUBLISHED["DARTS_V2"]], 3 * C,
                             [StageSpec(0, 1, C), StageSpec(0, 1, 2 * C, True), StageSpec(0, 1, 4 * C, True)])
    torch.manual_seed(0)
    darts = build_network("DARTS_V2", net="cifar", C=C, layers=5, num_classes=10, in_channels=1).eval()
    ours = build_network(g, net="evolved", C=98, layers=1, num_classes=10, in_channels=1).eval()
    assert ours.load_state_dict(darts.state_dict(), strict=True) is not None
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(ours(x), darts(x), atol=1e-6)
    from dnas.cost import count_params

    assert count_params(ours) == count_params(darts)


# ----------------------------------------------------------------------------- evaluation plumbing
def test_failing_evaluations_are_retried_then_kept_as_infeasible(monkeypatch):
    import dnas.evolve.problem as problem_mod

    calls: dict[str, int] = {}

    def flaky(genotype, settings):
        key = json.dumps(genotype["stages"])
        calls[key] = calls.get(key, 0) + 1
        if genotype["stem"] == 8:
            raise RuntimeError("worker died")  # always fails
        if calls[key] == 1:
            raise RuntimeError("transient")  # fails once, then works
        return {"error": 0.5, "params": 100 * sum(s["width"] for s in genotype["stages"]), "macs": 1}

    monkeypatch.setattr(problem_mod, "evaluate_candidate", flaky)
    space = small_space(stem_widths=(4, 8))
    seen = []
    prob = NetworkProblem(space, {"objectives": ["error", "params"]}, SerialExecutor(max_retries=2), on_results=seen.extend)
    X = np.array([[0] * 9, [1] + [0] * 8, [0] * 9])  # the duplicate is evaluated once
    out = {}
    prob._evaluate(X, out)
    assert prob.evaluated == 2 and len(seen) == 2
    ok, bad = seen
    assert ok["attempts"] == 2 and not ok.get("failed") and ok["params"] == 800
    assert bad["failed"] and bad["attempts"] == 3 and "worker died" in bad["error_message"]
    assert out["G"][0][0] <= 0 and out["G"][1][0] > 0 and np.array_equal(out["F"][0], out["F"][2])
    assert np.isfinite(out["F"]).all()
    prob._evaluate(X, out)  # all cached now
    assert prob.evaluated == 2


# ----------------------------------------------------------------------------- a tiny real run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("evolve") / "full"
    return evolve(out, **TINY)


def test_tiny_run_writes_a_non_dominated_front(tiny_run):
    res = tiny_run
    run = res.run_dir
    pareto = json.loads((run / "pareto.json").read_text())
    assert pareto["objectives"] == ["error", "params"] and pareto["generations"] == 2
    members = pareto["members"]
    assert len(members) >= 3 and len(members) == len(res.front)
    archive = [json.loads(l) for l in (run / "evals.jsonl").read_text().splitlines()]
    assert len(archive) == res.evaluations == res.trained >= 6  # two generations of 4, duplicates removed
    F = {m["key"]: [m["objectives"]["error"], m["objectives"]["params"]] for m in members}
    for a, b in itertools.permutations(F.values(), 2):
        assert not dominates(a, b)
    front_keys = set(F)
    for rec in archive:  # every other evaluated network is dominated by a front member
        if rec["key"] not in front_keys:
            assert any(dominates(f, objective_vector(rec, ["error", "params"])) for f in F.values())
        assert 0.0 <= rec["error"] <= 1.0 and rec["params"] > 0 and rec["macs"] > 0
    for m in members:
        g = load_network_genotype(run / m["file"])
        assert g.hash() == m["key"] and g.meta["objectives"] == m["objectives"]
        assert m["cost"]["params"] == m["objectives"]["params"]
    assert (run / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = json.loads((run / "checkpoint.json").read_text())
    assert ckpt["generation"] == 2 and len(ckpt["population"]) == 4
    assert [e["generation"] for e in map(json.loads, (run / "events.jsonl").read_text().splitlines()) if e["event"] == "generation"] == [1, 2]


class Stop(Exception):
    pass


def test_stopped_run_resumes_to_the_same_front_without_retraining(tiny_run, tmp_path):
    out = tmp_path / "stopped"

    def stop(rec):
        if rec["generation"] == 1:
            raise Stop

    with pytest.raises(Stop):
        evolve(out, on_generation=stop, **TINY)
    assert not (out / "pareto.json").exists()
    gen1 = len((out / "evals.jsonl").read_text().splitlines())
    with pytest.raises(ConfigError, match="drop --epochs"):
        evolve(out, resume=True, epochs=3)
    res = evolve(out, resume=True)
    assert res.trained == tiny_run.evaluations - gen1  # generation 1 came from the archive
    a = json.loads((tiny_run.run_dir / "pareto.json").read_text())["members"]
    b = json.loads((out / "pareto.json").read_text())["members"]
    assert [(m["key"], m["objectives"]) for m in a] == [(m["key"], m["objectives"]) for m in b]
    again = evolve(out, resume=True)  # a finished run replays entirely from its archive
    assert again.trained == 0 and [m["key"] for m in again.front] == [m["key"] for m in a]


def test_train_accepts_a_front_member(tiny_run, tmp_path):
    import dnas.api

    member = tiny_run.front[0]
    g = load_network_genotype(tiny_run.run_dir / member["file"])
    result = dnas.api.train(g, out=tmp_path / "train", net="evolved", data="digits", image_size=8, epochs=1,
                            batch_size=64, auxiliary=False, threads=1)
    assert result.params == member["cost"]["params"] and 0.0 <= result.test_accuracy <= 1.0
    assert load_network_genotype(tmp_path / "train").hash() == g.hash()


def _load_genotype_reads_networks() -> bool:
    from dnas.genotype import load_genotype

    try:
        return isinstance(load_genotype(small_space().decode([0] * 9).to_dict()), NetworkGenotype)
    except GenotypeError:
        return False


@pytest.mark.skipif(not _load_genotype_reads_networks(), reason="dnas.genotype has no loader hook for space 'network' yet")
def test_load_genotype_and_build_network_pick_up_network_files(tiny_run):
    from dnas.genotype import load_genotype
    from dnas.models import build_network

    path = tiny_run.run_dir / tiny_run.front[0]["file"]
    g = load_genotype(path)
    assert isinstance(g, NetworkGenotype)
    net = build_network(str(path), net="cifar", C=16, layers=8, num_classes=10, in_channels=1)
    from dnas.cost import count_params

    assert count_params(net) == tiny_run.front[0]["cost"]["params"]


def test_cli_rejects_bad_options_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from dnas.cli import _load_commands, app

    _load_commands()
    r = CliRunner().invoke(app, ["evolve", "--data", "digits", "--objectives", "error", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "need at least two distinct objectives" in str(r.exception)
    r = CliRunner().invoke(app, ["evolve", "--blocks", "NOPE", "--out", str(tmp_path / "y")])
    assert "--blocks 'NOPE'" in str(r.exception)
