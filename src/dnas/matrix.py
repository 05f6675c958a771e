"""Which (space, strategy, evaluator) combinations ``dnas search`` runs, as data.

One list, read by three things so they cannot disagree: the CLI (an invalid combination fails
in one line that lists the valid ones), the matrix test (``tests/test_matrix.py`` runs every
combination for a few steps) and the README's matrix table (``python -m dnas.matrix`` prints
it; a test compares it with the README).

Rules, all asked of the space object (no space is named here):

* every registered discrete strategy (``dnas.strategies.discrete.load_strategies()``) runs on
  every space, with ``train:`` (short real training; every space builds a network), ``ws:``
  (weight sharing) where the space has a supernet (``space.relaxations``), and ``tabular:`` /
  ``predictor:`` where a built-in table holds the space's architectures (``space.tables``);
* ``bilevel`` (gradient search) runs on spaces with a supernet, once per relaxation it supports;
* ``bohb-alt`` (two alternating BOHBs) is the generalized space's own structure x operator
  search: it runs on spaces that split into those two sub-spaces (``space.alternating``).
"""
from __future__ import annotations

from dataclasses import dataclass

from dnas.errors import ConfigError

#: Evaluator kinds in the order the table lists them.
EVALUATOR_KINDS = ("tabular", "train", "ws", "predictor")


@dataclass(frozen=True)
class Combination:
    """One runnable search: ``evaluator`` is an evaluator kind, or a relaxation for bilevel."""

    space: str
    strategy: str
    evaluator: str


def builtin_spaces() -> list[str]:
    from dnas.spaces.base import SPACE_MODULES

    return list(SPACE_MODULES)


def evaluator_kinds(space: str) -> list[str]:
    """The evaluator kinds a discrete strategy can use on ``space``."""
    from dnas.spaces.base import get_space

    sp = get_space(space)
    ok = {"tabular": bool(sp.tables), "train": True, "ws": bool(sp.relaxations), "predictor": bool(sp.tables)}
    return [k for k in EVALUATOR_KINDS if ok[k]]


def strategies(space: str) -> list[str]:
    """Every strategy that runs on ``space``: the discrete ones, then bilevel / bohb-alt."""
    from dnas.spaces.base import get_space
    from dnas.strategies.discrete import load_strategies

    sp = get_space(space)
    out = list(load_strategies())
    if sp.relaxations:
        out.append("bilevel")
    if getattr(sp, "alternating", False):
        out.append("bohb-alt")
    return out


def combinations(spaces: list[str] | None = None) -> list[Combination]:
    """Every valid combination on the built-in spaces (or on ``spaces``)."""
    from dnas.spaces.base import get_space

    out: list[Combination] = []
    for space in spaces or builtin_spaces():
        sp = get_space(space)
        for strategy in strategies(space):
            if strategy == "bilevel":
                out += [Combination(space, strategy, r) for r in sp.relaxations]
            elif strategy == "bohb-alt":
                out.append(Combination(space, strategy, "train"))
            else:
                out += [Combination(space, strategy, k) for k in evaluator_kinds(space)]
    return out


def check(space: str, strategy: str, evaluator: str | None) -> None:
    """One line listing what is valid when ``strategy`` or the ``evaluator`` kind cannot run on
    ``space`` (``evaluator`` is a spec such as ``train:2`` or ``None``)."""
    valid = strategies(space)
    if strategy not in valid:
        raise ConfigError(f"--strategy: {strategy!r} does not run on space {space}; choose one of: {', '.join(valid)}")
    if strategy in ("bilevel", "bohb-alt"):
        return
    kinds = evaluator_kinds(space)
    examples = {"tabular": "tabular:FILE", "train": "train:EPOCHS", "ws": "ws:EPOCHS", "predictor": "predictor:RECORDS"}
    from dnas.spaces.base import get_space

    tables = get_space(space).tables
    if tables:
        examples.update(tabular=f"tabular:{tables[0]}", predictor=f"predictor:{tables[0]}")
    listed = ", ".join(examples[k] for k in kinds)
    if evaluator is None:
        raise ConfigError(f"--evaluator: required with --strategy {strategy} on space {space}; choose one of: {listed}")
    from dnas.evaluators.base import evaluator_kind

    kind = evaluator_kind(evaluator)
    if kind in EVALUATOR_KINDS and kind not in kinds:
        raise ConfigError(f"--evaluator: {kind}: does not apply to space {space}; choose one of: {listed}")


def markdown_table() -> str:
    """The README's matrix table: one row per (space, strategy), the evaluators it runs with."""
    rows = ["| space | strategy | evaluators (`--evaluator`) or relaxations (`--relaxation`) |", "|---|---|---|"]
    seen: dict[tuple[str, str], list[str]] = {}
    for c in combinations():
        seen.setdefault((c.space, c.strategy), []).append(c.evaluator)
    for (space, strategy), evs in seen.items():
        if strategy == "bilevel":
            cell = "relaxations: " + ", ".join(f"`{e}`" for e in evs)
        elif strategy == "bohb-alt":
            cell = "its own short training (`--data`)"
        else:
            cell = ", ".join(f"`{e}:`" for e in evs)
        rows.append(f"| `{space}` | `{strategy}` | {cell} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
