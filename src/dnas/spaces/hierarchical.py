"""The hierarchical (H-DAS) space: per-stage cells and a searchable DAG of cells per stage.

Two levels, usable apart or together (Liu et al., AAAI 2021, "Hierarchical differentiable
architecture search"):

* **Cell level** (Hc-DAS): each of the three stages has its own normal cell and each of the two
  reductions its own reduction cell, each with its own architecture weights; the cells are the
  usual DARTS cells (:class:`~dnas.spaces.darts.DartsSpace`).
* **Stage level** (Hs-DAS): inside a stage the cells are the nodes of a small DAG. States 0 and 1
  are the stage's two inputs (both the previous stage's output through a 1x1 conv, as in the
  reference), state ``k + 2`` is cell ``k``. Cell 0 reads both inputs, every later cell reads a
  sliding ``window`` of the most recent states (3 by default); each link mixes parameter-free
  inter-cell candidates (``max_pool_3x3, avg_pool_3x3, skip_connect, none`` by default; any
  registered op works) and the sum feeds the cell as both of its inputs. The stage output
  concatenates its last two states. Derivation keeps the ``keep`` (2) strongest incoming links per
  cell, ranking a link by its strongest non-``none`` op, like the DARTS cell rule.

Two extra objectives shape the stage graph (both applied as their own architecture step after
the validation step; see :mod:`dnas.supernet_hier`):

* **Depth term** ``-(D1 + D2 + D3)``: a cell's expected depth is the mean over its incoming links
  of (depth of the link's source + 1), weighted by the link's strength (the total weight of its
  non-``none`` ops, normalised over the cell's links); the stage inputs have depth 0 and a
  stage's ``D`` is the mean over its cells. Without it the search favours short cuts from the
  stage inputs (they train fastest), giving shallow stages.
* **Cell-distribution search**: per stage, logits over ``end_candidates`` possible ends (the
  stage keeps its first ``e`` cells and outputs states ``e`` and ``e + 1``); the supernet output
  is the softmax-weighted sum of the candidate outputs and the penalty ``sum_j p_j * e_j`` (the
  expected number of cells kept) discourages long stages. The derived stage ends at the argmax.
  The reference writes the penalty as ``sum_j p_j * (j + 4)``: the same up to a constant, so the
  same gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from dnas.errors import ConfigError
from dnas.genotype import CellGene, StageGene
from dnas.ops import OPS
from dnas.spaces.darts import DartsSpace

#: Inter-cell candidate ops of the reference (parameter-free, so stage search is cheap).
LINK_PRIMITIVES: tuple[str, ...] = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "none")


def stage_sizes(layers: int) -> tuple[int, int, int]:
    """Normal cells per stage of a DARTS-style net of ``layers`` cells (reductions at 1/3 and
    2/3 of the depth): e.g. 8 -> (2, 2, 2), 20 -> (6, 6, 6)."""
    r1, r2 = layers // 3, 2 * layers // 3
    return r1, r2 - r1 - 1, layers - r2 - 1


def link_inputs(cell: int, window: int) -> list[int]:
    """State indices feeding ``cell`` (0-based): the ``window`` most recent states, i.e. both
    stage inputs for cell 0 and states ``cell + 2 - window .. cell + 1`` after that."""
    return list(range(max(0, cell + 2 - window), cell + 2))


def end_choices(num_cells: int, candidates: int) -> list[int]:
    """Candidate cell counts for the distribution search: the last ``candidates`` of 1..n."""
    k = max(1, min(candidates, num_cells))
    return list(range(num_cells - k + 1, num_cells + 1))


def end_concat(cells_kept: int) -> tuple[int, int]:
    """States concatenated by a stage that keeps ``cells_kept`` cells: its last two states."""
    return cells_kept, cells_kept + 1


def _none_index(primitives: Sequence[str]) -> int:
    return list(primitives).index("none") if "none" in primitives else -1


def link_strength(weights: torch.Tensor, primitives: Sequence[str]) -> torch.Tensor:
    """(links,) strength of each link: the total weight of its non-``none`` ops."""
    none = _none_index(primitives)
    if none < 0:
        return weights.sum(-1)
    keep = [k for k in range(weights.shape[-1]) if k != none]
    return weights[..., keep].sum(-1)


def expected_depths(link_weights: Sequence[torch.Tensor], primitives: Sequence[str], window: int) -> torch.Tensor:
    """Expected depth of every cell of one stage, differentiable in the link weights.

    ``link_weights[k]`` is the (inputs, ops) weight matrix of cell ``k``'s incoming links. A
    cell's depth is the strength-weighted mean of (depth of the source + 1); inputs have depth 0.
    """
    depth: list[torch.Tensor] = []
    zero = link_weights[0].new_zeros(())
    for k, w in enumerate(link_weights):
        a = link_strength(w, primitives)
        p = a / a.sum().clamp_min(1e-12)
        src = torch.stack([zero if i < 2 else depth[i - 2] for i in link_inputs(k, window)])
        depth.append((p * (src + 1.0)).sum())
    return torch.stack(depth)


def size_penalty(end_probs: torch.Tensor, choices: Sequence[int]) -> torch.Tensor:
    """Expected number of cells a stage keeps: ``sum_j p_j * e_j``."""
    return (end_probs * torch.as_tensor(list(choices), dtype=end_probs.dtype, device=end_probs.device)).sum()


def derive_links(weights: torch.Tensor, primitives: Sequence[str], inputs: Sequence[int], keep: int = 2) -> tuple[tuple[str, int], ...]:
    """Kept incoming links of one cell: the ``keep`` inputs whose strongest non-``none`` op
    weighs most (ties: the lower state index), each with that op."""
    W = weights.detach().cpu().double().numpy()
    none = _none_index(primitives)
    real = [k for k in range(len(primitives)) if k != none]
    order = sorted(range(len(inputs)), key=lambda j: (-max(W[j][k] for k in real), j))[: min(keep, len(inputs))]
    out = []
    for j in sorted(order):
        k_best = max(real, key=lambda k: (W[j][k], -k))
        out.append((primitives[k_best], int(inputs[j])))
    return tuple(out)


def derive_stage(
    link_weights: Sequence[torch.Tensor],
    primitives: Sequence[str],
    window: int,
    keep: int = 2,
    cells_kept: int | None = None,
) -> StageGene:
    """The discrete layout of one stage from per-cell link weights; a stage that ends after
    ``cells_kept`` cells drops the later cells and concatenates its last two states."""
    n = len(link_weights) if cells_kept is None else cells_kept
    if not 1 <= n <= len(link_weights):
        raise ValueError(f"cells_kept={cells_kept} out of range 1..{len(link_weights)}")
    links = [derive_links(link_weights[k], primitives, link_inputs(k, window), keep) for k in range(n)]
    return StageGene(links, end_concat(n))


@dataclass(frozen=True)
class HierarchicalSpace:
    """What the hierarchical search searches: which levels, the cell space, the stage DAG."""

    cell_space: DartsSpace = DartsSpace()
    search_cells: bool = True
    search_stages: bool = True
    sizes: tuple[int, int, int] = (2, 2, 2)
    link_primitives: tuple[str, ...] = LINK_PRIMITIVES
    window: int = 3
    keep: int = 2
    search_end: bool = False
    end_candidates: int = 5

    def __post_init__(self) -> None:
        if not (self.search_cells or self.search_stages):
            raise ConfigError("hier_level: the hierarchical space needs cell search, stage search or both")
        if len(self.sizes) != 3 or min(self.sizes) < 1:
            raise ConfigError(
                f"layers / cells_per_stage: every stage needs at least one normal cell, got {tuple(self.sizes)}; raise layers (>= 8) or set cells_per_stage"
            )
        for i, p in enumerate(self.link_primitives):
            if p not in OPS:
                raise ConfigError(f"link_primitives[{i}]: unknown op {p!r}; known ops: {', '.join(OPS.names())}")
        if not [p for p in self.link_primitives if p != "none"]:
            raise ConfigError("link_primitives: needs at least one op other than 'none'")
        if len(set(self.link_primitives)) != len(self.link_primitives):
            raise ConfigError("link_primitives: an op is listed twice")
        if self.window < 2:
            raise ConfigError("stage_window: must be at least 2 (the first cell reads both stage inputs)")
        if self.keep < 1:
            raise ConfigError("link_keep: must be at least 1")
        if self.end_candidates < 1:
            raise ConfigError("stage_end_candidates: must be at least 1")

    def inputs(self, cell: int) -> list[int]:
        return link_inputs(cell, self.window)

    def end_choices(self, stage: int) -> list[int]:
        return end_choices(self.sizes[stage], self.end_candidates)

    def derive_cell(self, weights: torch.Tensor) -> CellGene:
        return CellGene(self.cell_space.derive_cell(weights), self.cell_space.concat)

    def derive_stage(self, link_weights: Sequence[torch.Tensor], cells_kept: int | None = None) -> StageGene:
        return derive_stage(link_weights, self.link_primitives, self.window, self.keep, cells_kept)

    def expected_depths(self, link_weights: Sequence[torch.Tensor]) -> torch.Tensor:
        return expected_depths(link_weights, self.link_primitives, self.window)

