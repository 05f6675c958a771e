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



# ---------------------------------------------------------------------------- the SearchSpace
import importlib  # noqa: E402
import random as _random  # noqa: E402
from itertools import combinations as _combinations  # noqa: E402
from typing import Any  # noqa: E402

from dnas.genotype import NUM_REDUCTIONS, NUM_STAGES, Genotype  # noqa: E402
from dnas.ops import DARTS_PRIMITIVES  # noqa: E402
from dnas.spaces.base import PIN, SearchSpace, register_space  # noqa: E402
from dnas.spaces.darts import DartsCellSpace, pinned_cell_logits  # noqa: E402

#: Hierarchy levels: which parts an architecture of the space chooses.
LEVELS = ("cell", "stage", "both")


@register_space("hierarchical")
class HierarchicalSearchSpace(SearchSpace):
    """The discrete view of the H-DAS space (``level``: ``cell``, ``stage`` or ``both``).

    An architecture is a hierarchical :class:`~dnas.genotype.Genotype` (format version 2):

    * cell level: a DARTS cell (each node two distinct inputs, ops other than ``none``) for each
      of the 3 stages and each of the 2 reductions, encoded cell by cell like
      :class:`~dnas.spaces.darts.DartsCellSpace`;
    * stage level: in stage ``s`` (``sizes[s]`` cells) cell ``k`` keeps ``min(keep, window
      inputs)`` distinct incoming links - one categorical choice among the input subsets - each
      with a non-``none`` link op; the stage output concatenates its last two states. The
      stage-end (cell-distribution) search of the supernet is not part of the discrete space:
      stages have ``sizes`` cells.

    Every vector inside the cardinalities is valid, so the default one-coordinate neighbours and
    Hamming ``distance`` apply. With ``level="stage"`` the cells are the fixed ``cell`` genotype
    (DARTS_V2 by default). The supernet is :class:`dnas.supernet_hier.HierarchicalSupernet`
    (imported on use: that module builds on this one); ``fix_arch`` pins its per-stage cell
    logits and link logits (unkept links to ``none``).
    """

    input_shape = (3, 32, 32)
    proxy_net = {"C": 8}

    #: Relaxations the hierarchical supernet runs (each mixes both cell edges and stage links):
    #: the edge-mixing ones; input-selecting (topo) and single-path-placing ones (spos) and the
    #: perturbation-based sdarts-adv need hooks this supernet does not provide yet.
    relaxations = ("darts", "pc", "gdas", "msg", "fbnetv2", "fairdarts", "sdarts-rs")

    def __init__(self, level: str = "both", layers: int = 8, primitives: Sequence[str] = tuple(DARTS_PRIMITIVES),
                 steps: int = 4, link_primitives: Sequence[str] = LINK_PRIMITIVES, window: int = 3, keep: int = 2,
                 cell: str = "DARTS_V2") -> None:
        if level not in LEVELS:
            raise ConfigError(f"hier_level: {level!r} unknown; choose one of: {', '.join(LEVELS)}")
        self.level, self.layers, self.cell_name = level, int(layers), cell
        self.hspace = HierarchicalSpace(
            cell_space=DartsSpace(tuple(primitives), steps, steps), search_cells=level in ("cell", "both"),
            search_stages=level in ("stage", "both"), sizes=stage_sizes(layers), link_primitives=tuple(link_primitives),
            window=window, keep=keep)
        self.cells = DartsCellSpace(tuple(primitives), steps)
        self.link_ops = tuple(p for p in link_primitives if p != "none")
        self._subsets = [[tuple(c) for c in _combinations(link_inputs(k, window), min(keep, len(link_inputs(k, window))))]
                         for k in range(max(self.hspace.sizes))]
        cards: list[int] = []
        if self.hspace.search_cells:
            cards += list(self.cells.cell_cardinalities) * (NUM_STAGES + NUM_REDUCTIONS)
        if self.hspace.search_stages:
            for n in self.hspace.sizes:
                for k in range(n):
                    cards += [len(self._subsets[k])] + [len(self.link_ops)] * len(self._subsets[k][0])
        self._cards = tuple(cards)
        self._fixed: Genotype | None = None

    def fixed_cell(self) -> Genotype:
        """The plain cell genotype used by every cell when only stages are searched."""
        if self._fixed is None:
            from dnas.genotype import load_genotype

            self._fixed = self.cells.parse(load_genotype(self.cell_name))
        return self._fixed

    # ------------------------------------------------------------------ data
    def parse(self, obj: Any) -> Genotype:
        from dnas.errors import GenotypeError
        from dnas.genotype import load_genotype

        g = obj if isinstance(obj, Genotype) else load_genotype(obj)
        sp = self.hspace
        if sp.search_cells != (g.stage_normal is not None) or sp.search_stages != (g.stages is not None):
            raise GenotypeError(f"hierarchical genotype: level {self.level!r} needs "
                                f"{'per-stage cells' if sp.search_cells else 'no per-stage cells'} and "
                                f"{'stage layouts' if sp.search_stages else 'no stage layouts'}")
        return self.decode(self.encode(g))

    def read_genotype(self, d: dict) -> Genotype:
        return Genotype.from_dict(d)

    def to_dict(self, arch: Genotype) -> dict:
        return arch.to_dict(with_meta=False)

    def hash(self, arch: Genotype) -> str:
        return arch.hash()

    def op_names(self, arch: Genotype) -> list[str]:
        cells = list(arch.stage_normal or ()) + list(arch.stage_reduce or ())
        return [o for c in cells for o, _ in c.edges] or [o for o, _ in arch.normal + arch.reduce]

    def describe(self, arch: Genotype) -> list[str]:
        out = []
        for k, c in enumerate(arch.stage_normal or ()):
            out.append(f"stage {k + 1} normal: {', '.join(f'{o}<-{i}' for o, i in c.edges)}")
        for k, c in enumerate(arch.stage_reduce or ()):
            out.append(f"reduction {k + 1}: {', '.join(f'{o}<-{i}' for o, i in c.edges)}")
        for k, st in enumerate(arch.stages or ()):
            links = "; ".join(f"cell {j}<-" + "+".join(f"{o}({i})" for o, i in cell) for j, cell in enumerate(st.links))
            out.append(f"stage {k + 1} layout: {links}  concat {list(st.concat)}")
        return out

    # ------------------------------------------------------------------ categorical view
    @property
    def cardinalities(self) -> tuple[int, ...]:
        return self._cards

    def encode(self, arch: Genotype) -> list[int]:
        from dnas.errors import GenotypeError

        sp, out = self.hspace, []
        if sp.search_cells:
            cells = [("cells.normal", c) for c in arch.stage_normal] + [("cells.reduce", c) for c in arch.stage_reduce]
            if len(cells) != NUM_STAGES + NUM_REDUCTIONS:
                raise GenotypeError(f"genotype.cells: needs {NUM_STAGES} normal and {NUM_REDUCTIONS} reduction cells")
            for name, c in cells:
                self.cells.check_cell(name, c.edges, c.concat)
                out += self.cells.encode_cell(c.edges)
        if sp.search_stages:
            if len(arch.stages) != NUM_STAGES:
                raise GenotypeError(f"genotype.stages: needs {NUM_STAGES} stages")
            for s, (st, n) in enumerate(zip(arch.stages, sp.sizes)):
                if st.num_cells != n:
                    raise GenotypeError(f"genotype.stages[{s}]: this space has {n} cells per stage (layers={self.layers}), got {st.num_cells}")
                for k, links in enumerate(st.links):
                    links = sorted(links, key=lambda e: e[1])
                    subset = tuple(i for _, i in links)
                    if subset not in self._subsets[k]:
                        raise GenotypeError(f"genotype.stages[{s}].links[{k}]: inputs {list(subset)} are not "
                                            f"{len(self._subsets[k][0])} distinct states of {link_inputs(k, sp.window)}")
                    bad = [o for o, _ in links if o not in self.link_ops]
                    if bad:
                        raise GenotypeError(f"genotype.stages[{s}].links[{k}]: op {bad[0]!r} is not a link candidate ({', '.join(self.link_ops)})")
                    out += [self._subsets[k].index(subset)] + [self.link_ops.index(o) for o, _ in links]
        return out

    def decode(self, vector: Sequence[int]) -> Genotype:
        v = [int(x) for x in vector]
        if len(v) != len(self._cards) or any(not 0 <= x < c for x, c in zip(v, self._cards)):
            raise ValueError(f"hierarchical space: vector {v} outside the cardinalities")
        sp, pos = self.hspace, 0
        stage_normal = stage_reduce = stages = None
        if sp.search_cells:
            w = len(self.cells.cell_cardinalities)
            genes = []
            for _ in range(NUM_STAGES + NUM_REDUCTIONS):
                genes.append(CellGene(self.cells.decode_cell(v[pos : pos + w]), self.cells.cell.concat))
                pos += w
            stage_normal, stage_reduce = tuple(genes[:NUM_STAGES]), tuple(genes[NUM_STAGES:])
            normal, reduce = genes[0], genes[NUM_STAGES]
            base = (normal.edges, normal.concat, reduce.edges, reduce.concat)
        else:
            f = self.fixed_cell()
            base = (f.normal, f.normal_concat, f.reduce, f.reduce_concat)
        if sp.search_stages:
            stages = []
            for n in sp.sizes:
                links = []
                for k in range(n):
                    subset = self._subsets[k][v[pos]]
                    links.append(tuple((self.link_ops[v[pos + 1 + m]], i) for m, i in enumerate(subset)))
                    pos += 1 + len(subset)
                stages.append(StageGene(links, end_concat(n)))
            stages = tuple(stages)
        return Genotype(*base, "hierarchical", {}, stage_normal=stage_normal, stage_reduce=stage_reduce, stages=stages)

    def sample(self, rng: _random.Random) -> Genotype:
        return self.decode([rng.randrange(c) for c in self._cards])

    # ------------------------------------------------------------------ networks
    def build(self, arch: Genotype, *, num_classes: int = 10, in_channels: int | None = None, C: int = 16,
              net: str = "cifar", auxiliary: bool = False, drop_path_prob: float = 0.0, **_: Any):
        from dnas.models import build_network

        return build_network(self.parse(arch), net=net, C=C, layers=self.layers, num_classes=num_classes,
                             in_channels=in_channels or self.input_shape[0], auxiliary=auxiliary,
                             drop_path_prob=drop_path_prob)

    def supernet_config(self) -> dict:
        sp = self.hspace
        d = {"space": "hierarchical", "hier_level": self.level, "layers": self.layers,
             "primitives": list(sp.cell_space.primitives), "steps": sp.cell_space.steps,
             "multiplier": sp.cell_space.multiplier, "link_primitives": list(sp.link_primitives),
             "stage_window": sp.window, "link_keep": sp.keep, "stage_end_search": False}
        if not sp.search_cells:
            d["cell"] = self.cell_name
        return d

    def supernet(self, cfg: Any, num_classes: int, in_channels: int):
        self.check_relaxation(cfg.relaxation)
        # dnas.supernet_hier builds on this module, so it is imported by name (no import circle)
        return importlib.import_module("dnas.supernet_hier").build_hierarchical_supernet(cfg, num_classes, in_channels)

    def fix_arch(self, supernet: Any, arch: Genotype) -> None:
        g = self.parse(arch)
        prims, steps = supernet.space.cell_space.primitives, supernet.space.cell_space.steps
        if supernet.alpha_normal is not None:
            if supernet.beta_normal is not None:
                raise ConfigError("relaxation: weight sharing pins single paths; use darts, gdas or msg (no edge weights)")
            for alpha, c in zip(list(supernet.alpha_normal) + list(supernet.alpha_reduce), g.stage_normal + g.stage_reduce):
                alpha.data.copy_(pinned_cell_logits(c.edges, prims, steps).to(alpha))
        if supernet.alpha_links is not None:
            lp = list(supernet.space.link_primitives)
            params = iter(supernet.alpha_links)
            for st in g.stages:
                for k, links in enumerate(st.links):
                    alpha = next(params)
                    kept = {i: o for o, i in links}
                    logits = torch.zeros_like(alpha)
                    for r, i in enumerate(supernet.space.inputs(k)):
                        logits[r, lp.index(kept.get(i, "none"))] = PIN
                    alpha.data.copy_(logits)
