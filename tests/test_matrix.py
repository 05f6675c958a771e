"""The matrix: every valid (space, strategy, evaluator) combination of ``dnas search`` runs.

The combinations come from :mod:`dnas.matrix` (the CLI validates with the same list and the
README's table is generated from it; ``test_readme_table_is_the_matrix`` compares them), so a
new strategy registered in ``STRATEGIES`` or a new space joins this test by itself.

Each case runs the real CLI in-process for a few steps at tiny sizes on the built-in digits
data (40 images: 16 train, 16 val for the ``train:``/``ws:`` evaluators and the bilevel
search), then checks what a user relies on: exit 0 and a JSON result, a ``genotype.json`` that
the space parses as a valid architecture, ``dnas show RUN`` on it, and a resumable run
directory (``dnas search --resume RUN`` reports the same result without redoing the search).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dnas.strategies.discrete as discrete
from dnas.cli import _load_commands, app, main
from dnas.matrix import Combination, combinations, markdown_table
from dnas.spaces.base import get_space

_load_commands()
CASES = combinations()
TINY = ["--data", "digits", "--max-samples", "40", "--seed", "0"]


def _evaluator(c: Combination) -> str:
    table = (get_space(c.space).tables or ("",))[0]
    return {
        "tabular": f"tabular:{table}",
        "train": "train:1,batch_size=16",
        "ws": "ws:1,batch_size=16",
        "predictor": f"predictor:{table},epochs=2,ensemble=1",
    }[c.evaluator]


def _args(c: Combination, out: Path) -> list[str]:
    if c.strategy == "bilevel":
        layers = {"darts": "3", "nb201": "3", "hierarchical": "5", "fbnetv2": "3"}.get(c.space, "3")
        return ["search", "--space", c.space, "--relaxation", c.evaluator, *TINY, "--epochs", "1", "--batch-size", "16",
                "--init-channels", "4", "--layers", layers, "--threads", "1", "--guard", "off", "--out", str(out), "--json"]
    if c.strategy == "bohb-alt":
        return ["search", "--space", c.space, "--strategy", c.strategy, *TINY, "--budget", "2", "--min-budget", "1",
                "--max-budget", "1", "--out", str(out), "--json"]
    return ["search", "--space", c.space, "--strategy", c.strategy, "--evaluator", _evaluator(c), *TINY,
            "--budget", "2", "--out", str(out), "--json"]


def _json(output: str) -> dict:
    return json.loads(output[output.index("{"):])


@pytest.mark.parametrize("combo", CASES, ids=[f"{c.space}-{c.strategy}-{c.evaluator}" for c in CASES])
def test_combination_runs(combo: Combination, tmp_path: Path) -> None:
    cli = CliRunner()
    out = tmp_path / "run"
    r = cli.invoke(app, _args(combo, out))
    assert r.exit_code == 0, r.output
    first = _json(r.output)

    space = get_space(combo.space)
    saved = json.loads((out / "genotype.json").read_text())
    if combo.strategy in ("bilevel", "bohb-alt"):  # a supernet / search of its own size: a valid genotype of the space
        arch = space.read_genotype(saved)
    else:  # drawn from the space object itself: one of its architectures
        arch = space.parse(saved)
    assert arch.hash()

    shown = cli.invoke(app, ["show", str(out), "--json"])
    assert shown.exit_code == 0, shown.output
    assert _json(shown.output)["params"] > 0

    if combo.strategy not in ("bilevel", "bohb-alt") and not hasattr(discrete, "resume_discrete_search"):
        pytest.skip("resuming a discrete run directory (replaying events.jsonl) lands with issue 14")
    again = cli.invoke(app, ["search", "--resume", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert space.read_genotype(json.loads((out / "genotype.json").read_text())) == arch
    second = _json(again.output)
    for key in ("best_arch", "best_accuracy"):
        if key in first:
            assert second[key] == first[key]


def test_readme_table_is_the_matrix() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    m = re.search(r"<!-- matrix:start -->\n(.*?)\n<!-- matrix:end -->", readme, re.S)
    assert m, "README.md needs the matrix table between <!-- matrix:start --> and <!-- matrix:end -->"
    # the same rows (strategy modules may register in another order inside a full test run)
    assert sorted(m.group(1).strip().splitlines()) == sorted(markdown_table().strip().splitlines()), \
        "regenerate it with: python -m dnas.matrix"


@pytest.mark.parametrize("args, needle", [
    (["--space", "generalized", "--strategy", "bilevel"], "does not run on space generalized; choose one of:"),
    (["--space", "fbnetv2", "--strategy", "random", "--evaluator", "tabular:nb201_cifar10"], "choose one of: train:EPOCHS, ws:EPOCHS"),
    (["--space", "network", "--strategy", "evolution"], "--evaluator: required"),
    (["--space", "darts", "--strategy", "bohb-alt"], "choose one of"),
    (["--space", "nb201", "--strategy", "nope", "--evaluator", "train:1"], "choose one of"),
])
def test_invalid_combination_is_one_line_listing_the_valid(args: list[str], needle: str, capsys) -> None:
    assert main(["search", *args]) == 2
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines


def test_every_command_accepts_quiet_and_json() -> None:
    from typer.main import get_command

    def leaves(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from leaves(sub, path + [name])
        else:
            yield " ".join(path), {o for p in cmd.params for o in getattr(p, "opts", [])}

    found = dict(leaves(get_command(app), []))
    assert {"search", "show", "train", "export", "latency evaluate", "predictor evaluate"} <= set(found)
    missing = {name: sorted({"--quiet", "--json"} - opts) for name, opts in found.items() if not {"--quiet", "--json"} <= opts}
    assert not missing, missing
