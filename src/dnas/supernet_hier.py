"""The one-shot network of the hierarchical (H-DAS) space; see :mod:`dnas.spaces.hierarchical`.

Architecture parameters (all kept apart from the weights, as in :class:`dnas.supernet.Supernet`):

* cell level: ``alpha_normal[s]`` for stage ``s`` (3) and ``alpha_reduce[r]`` per reduction (2),
  plus ``beta_*`` when the cell relaxation uses edge parameters (PC-DARTS);
* stage level: ``alpha_links[s * n + k]``, the (inputs, link ops) logits of cell ``k`` of stage
  ``s``, and with the distribution search ``beta_end[s]``, the logits of where stage ``s`` ends.

Cells are mixed by the configured relaxation (``relaxation``), inter-cell links by
``link_relaxation`` (``darts`` softmax by default, as in the reference); both go through the
:class:`~dnas.relax.base.Relaxation` interface, so new relaxations work at either level. Links
carry no edge parameters: a link's strength is its non-``none`` op weight.

Layouts. With stage search, each stage is a DAG of cells (cell inputs = mixed links of a
window of earlier states) and every cell in a stage has ``multiplier * C_s`` channels in and out;
stage ``s`` outputs ``2 * multiplier * C_s`` channels (its last two states), each reduction cell
reads the stage output as both inputs. Without stage search (cell level only) the cells are
stacked as in DARTS (each cell reads the two previous outputs), only each stage has its own alphas.

The depth term and the size penalty are not part of the validation loss: :func:`hdas_aux_step`
registers them as an extra architecture step (``ARCH_STEPS``) taken after every architecture step.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.errors import ConfigError
from dnas.genotype import Genotype, load_genotype
from dnas.models.cell import Cell
from dnas.ops import ReLUConvBN
from dnas.relax import RELAXATIONS, Relaxation, make_relaxation, num_edges
from dnas.spaces.darts import DartsSpace
from dnas.spaces.hierarchical import HierarchicalSpace, end_choices, end_concat, size_penalty, stage_sizes
from dnas.archsplit import ArchWeightSplit
from dnas.supernet import SearchCell

NUM_STAGES = 3


# ---------------------------------------------------------------------- relaxation helpers
def _relaxation(name: str, cfg: Any) -> Relaxation:
    cls = RELAXATIONS.get(name, "relaxation")
    if hasattr(cls, "from_config"):
        return cls.from_config(cfg)
    return make_relaxation(name, partial_k=getattr(cfg, "partial_k", 4))


def _edge_shape(relax: Relaxation, steps: int) -> tuple[int, ...]:
    f = getattr(relax, "edge_param_shape", None)
    return tuple(f(steps)) if f is not None else (num_edges(steps),)


def _forward_edge_weights(relax: Relaxation, beta, steps: int, training: bool):
    f = getattr(relax, "forward_edge_weights", None)
    return f(beta, steps, training=training) if f is not None else relax.edge_weights(beta, steps)


class RelaxationGroup:
    """The cell and link relaxations seen as one by the search loop: schedules (``on_epoch``),
    state and sampling scopes go to both; losses come from the cell relaxation (or the link
    relaxation when cells are fixed)."""

    def __init__(self, cell: Relaxation | None, link: Relaxation) -> None:
        self.cell, self.link = cell, link
        self.primary = cell if cell is not None else link
        self.members = [self.primary] + ([link] if link is not self.primary else [])
        self.name = "+".join(m.name for m in self.members)

    def __getattr__(self, item: str):  # weight_loss, arch_loss, ... of the primary relaxation
        primary = self.__dict__.get("primary")
        if primary is None or item.startswith("__"):  # copy/pickle protocol lookups on a bare instance
            raise AttributeError(item)
        return getattr(primary, item)

    def on_epoch(self, epoch: int, epochs: int) -> None:
        for m in self.members:
            m.on_epoch(epoch, epochs)

    def state(self) -> dict:
        return {"members": [m.state() for m in self.members]}

    def load_state(self, state: dict) -> None:
        for m, s in zip(self.members, (state or {}).get("members", [])):
            m.load_state(s)

    def sample_scope(self):
        stack = contextlib.ExitStack()
        for m in self.members:
            scope = getattr(m, "sample_scope", None)
            if scope is not None:
                stack.enter_context(scope())
        return stack


# ---------------------------------------------------------------------- modules
class SearchStage(nn.Module):
    """One stage as a DAG of cells with mixed inter-cell links (see the module docstring)."""

    def __init__(self, space: HierarchicalSpace, link_relax: Relaxation, cells: list[nn.Module], C_in: int, W: int, searching_cells: bool):
        super().__init__()
        self.space = space
        self.searching_cells = searching_cells
        self.preprocess0 = ReLUConvBN(C_in, W, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_in, W, 1, 1, 0, affine=False)
        self.cells = nn.ModuleList(cells)
        self.links = nn.ModuleList(
            nn.ModuleList(link_relax.mixed_op(W, 1, space.link_primitives) for _ in space.inputs(k)) for k in range(len(cells))
        )

    def forward(self, s0, s1, link_w, cell_w=None, cell_ew=None, end_w=None, ends=None):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k, cell in enumerate(self.cells):
            s = None
            for op, i, w in zip(self.links[k], self.space.inputs(k), link_w[k]):
                y = op(states[i], w)
                s = y if s is None else s + y
            states.append(cell(s, s, cell_w, cell_ew) if self.searching_cells else cell(s, s))
        if end_w is None:
            return torch.cat(states[-2:], dim=1)
        out = None
        for p, e in zip(end_w, ends):
            a, b = end_concat(e)
            y = p * torch.cat([states[a], states[b]], dim=1)
            out = y if out is None else out + y
        return out


class HierarchicalSupernet(ArchWeightSplit, nn.Module):
    """Search network of the hierarchical space: stem, 3 stages with 2 reduction cells between
    them, global pooling, classifier. ``fixed`` is the cell genotype when cells are not searched."""

    def __init__(
        self,
        space: HierarchicalSpace,
        cell_relax: Relaxation | None,
        link_relax: Relaxation,
        *,
        fixed: Genotype | None = None,
        C: int = 16,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        if not space.search_cells and fixed is None:
            raise ConfigError("cell: stage-level search with fixed cells needs a cell genotype (--cell DARTS_V2 or a genotype file)")
        if space.search_cells and cell_relax is None:
            raise ConfigError("relaxation: cell-level search needs a cell relaxation")
        self.space = space
        self.cell_relax, self.link_relax = cell_relax, link_relax
        self.relax = RelaxationGroup(cell_relax, link_relax)
        self.fixed = fixed
        cs: DartsSpace = space.cell_space
        self.steps = cs.steps
        C_stem = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False), nn.BatchNorm2d(C_stem))
        self.num_classes = num_classes
        if space.search_stages:
            C_out = self._build_stages(C, C_stem)
        else:
            C_out = self._build_chain(C, C_stem)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_out, num_classes)
        self._make_arch_params()

    # -------------------------------------------------------------- construction
    def _cell(self, stage_or_red: int, reduction: bool, C_pp: int, C_p: int, C_cell: int, reduction_prev: bool) -> nn.Module:
        if self.space.search_cells:
            return SearchCell(self.space.cell_space, self.cell_relax, C_pp, C_p, C_cell, reduction, reduction_prev)
        return Cell(self.fixed, C_pp, C_p, C_cell, reduction, reduction_prev)

    def _multiplier(self, reduction: bool) -> int:
        if self.space.search_cells:
            return self.space.cell_space.multiplier
        return len(self.fixed.reduce_concat if reduction else self.fixed.normal_concat)

    def _build_stages(self, C: int, C_in: int) -> int:
        self.stages = nn.ModuleList()
        self.reductions = nn.ModuleList()
        C_cell = C
        for s, n in enumerate(self.space.sizes):
            W = self._multiplier(False) * C_cell
            cells = [self._cell(s, False, W, W, C_cell, False) for _ in range(n)]
            self.stages.append(SearchStage(self.space, self.link_relax, cells, C_in, W, self.space.search_cells))
            C_in = 2 * W
            if s < NUM_STAGES - 1:
                C_cell *= 2
                self.reductions.append(self._cell(s, True, C_in, C_in, C_cell, False))
                C_in = self._multiplier(True) * C_cell
        return C_in

    def _build_chain(self, C: int, C_stem: int) -> int:
        self.cells = nn.ModuleList()
        self.cell_stage: list[tuple[bool, int]] = []  # (reduction, stage or reduction index)
        C_pp, C_p, C_cell = C_stem, C_stem, C
        reduction_prev = False
        for s, n in enumerate(self.space.sizes):
            for _ in range(n):
                cell = self._cell(s, False, C_pp, C_p, C_cell, reduction_prev)
                self.cells.append(cell)
                self.cell_stage.append((False, s))
                reduction_prev = False
                C_pp, C_p = C_p, self._multiplier(False) * C_cell
            if s < NUM_STAGES - 1:
                C_cell *= 2
                self.cells.append(self._cell(s, True, C_pp, C_p, C_cell, reduction_prev))
                self.cell_stage.append((True, s))
                reduction_prev = True
                C_pp, C_p = C_p, self._multiplier(True) * C_cell
        return C_p

    def _make_arch_params(self) -> None:
        sp = self.space
        self.alpha_normal = self.alpha_reduce = self.beta_normal = self.beta_reduce = None
        self.alpha_links = self.beta_end = None
        if sp.search_cells:
            E, K = sp.cell_space.num_edges, len(sp.cell_space.primitives)
            self.alpha_normal = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(E, K)) for _ in range(NUM_STAGES))
            self.alpha_reduce = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(E, K)) for _ in range(NUM_STAGES - 1))
            if self.cell_relax.uses_edge_params:
                shape = _edge_shape(self.cell_relax, self.steps)
                self.beta_normal = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(*shape)) for _ in range(NUM_STAGES))
                self.beta_reduce = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(*shape)) for _ in range(NUM_STAGES - 1))
        if sp.search_stages:
            L = len(sp.link_primitives)
            self.alpha_links = nn.ParameterList(
                nn.Parameter(1e-3 * torch.randn(len(sp.inputs(k)), L)) for n in sp.sizes for k in range(n)
            )
            if sp.search_end:
                self.beta_end = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(len(sp.end_choices(s)))) for s in range(NUM_STAGES))

    # -------------------------------------------------------------- parameter groups
    def arch_parameters(self) -> list[nn.Parameter]:
        ps: list[nn.Parameter] = []
        for group in (self.alpha_normal, self.alpha_reduce, self.beta_normal, self.beta_reduce, self.alpha_links, self.beta_end):
            if group is not None:
                ps.extend(group)
        return ps

    @property
    def searches_stages(self) -> bool:
        return self.space.search_stages

    # -------------------------------------------------------------- weights
    def _stage_links(self, s: int) -> list[nn.Parameter]:
        start = sum(self.space.sizes[:s])
        return [self.alpha_links[start + k] for k in range(self.space.sizes[s])]

    def link_derive_weights(self, s: int) -> list[torch.Tensor]:
        """Deterministic (inputs, ops) weights of every cell's links in stage ``s``."""
        return [self.link_relax.derive_weights(a, None, 1) for a in self._stage_links(s)]

    def expected_depths(self) -> torch.Tensor:
        """(3,) mean expected cell depth of each stage (differentiable)."""
        return torch.stack([self.space.expected_depths(self.link_derive_weights(s)).mean() for s in range(NUM_STAGES)])

    def end_probs(self, s: int) -> torch.Tensor:
        return F.softmax(self.beta_end[s], dim=-1)

    def size_penalty(self) -> torch.Tensor:
        """Sum over stages of the expected number of cells kept."""
        return sum(size_penalty(self.end_probs(s), self.space.end_choices(s)) for s in range(NUM_STAGES))

    # -------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        train = self.training
        cw = self.cell_relax
        w_n = w_r = e_n = e_r = [None] * NUM_STAGES
        if self.space.search_cells:
            w_n = [cw.forward_op_weights(a, training=train) for a in self.alpha_normal]
            w_r = [cw.forward_op_weights(a, training=train) for a in self.alpha_reduce]
            if self.beta_normal is not None:
                e_n = [_forward_edge_weights(cw, b, self.steps, train) for b in self.beta_normal]
                e_r = [_forward_edge_weights(cw, b, self.steps, train) for b in self.beta_reduce]
        s0 = s1 = self.stem(x)
        if self.space.search_stages:
            for s, stage in enumerate(self.stages):
                link_w = [self.link_relax.forward_op_weights(a, training=train) for a in self._stage_links(s)]
                end_w = self.end_probs(s) if self.beta_end is not None else None
                out = stage(s0, s1, link_w, w_n[s], e_n[s], end_w, self.space.end_choices(s))
                if s < NUM_STAGES - 1:
                    red = self.reductions[s]
                    out = red(out, out, w_r[s], e_r[s]) if self.space.search_cells else red(out, out)
                s0 = s1 = out
        else:
            for cell, (reduction, s) in zip(self.cells, self.cell_stage):
                w, e = (w_r[s], e_r[s]) if reduction else (w_n[s], e_n[s])
                s0, s1 = s1, cell(s0, s1, w, e)
        return self.classifier(self.global_pooling(s1).flatten(1))

    # -------------------------------------------------------------- derivation
    def genotype(self, **meta) -> Genotype:
        sp = self.space
        with torch.no_grad():
            stage_normal = stage_reduce = stages = None
            if sp.search_cells:
                r = self.cell_relax
                bn = self.beta_normal if self.beta_normal is not None else [None] * NUM_STAGES
                br = self.beta_reduce if self.beta_reduce is not None else [None] * NUM_STAGES
                stage_normal = tuple(sp.derive_cell(r.derive_weights(a, b, self.steps)) for a, b in zip(self.alpha_normal, bn))
                stage_reduce = tuple(sp.derive_cell(r.derive_weights(a, b, self.steps)) for a, b in zip(self.alpha_reduce, br))
                base_n, base_r = stage_normal[0], stage_reduce[0]
                normal, normal_concat, reduce, reduce_concat = base_n.edges, base_n.concat, base_r.edges, base_r.concat
            else:
                f = self.fixed
                normal, normal_concat, reduce, reduce_concat = f.normal, f.normal_concat, f.reduce, f.reduce_concat
            if sp.search_stages:
                stages = []
                for s in range(NUM_STAGES):
                    kept = None
                    if self.beta_end is not None:
                        kept = sp.end_choices(s)[int(torch.argmax(self.beta_end[s]))]
                    stages.append(sp.derive_stage(self.link_derive_weights(s), kept))
                stages = tuple(stages)
        return Genotype(
            normal, normal_concat, reduce, reduce_concat, "hierarchical", meta,
            stage_normal=stage_normal, stage_reduce=stage_reduce, stages=stages,
        )

    def arch_summary(self) -> dict:
        """Softmaxed weights per stage (cells, links, stage ends) and expected depths, for the log."""
        d: dict[str, Any] = {}
        with torch.no_grad():
            if self.space.search_cells:
                d["normal"] = [F.softmax(a, -1).tolist() for a in self.alpha_normal]
                d["reduce"] = [F.softmax(a, -1).tolist() for a in self.alpha_reduce]
            if self.space.search_stages:
                d["links"] = [[w.tolist() for w in self.link_derive_weights(s)] for s in range(NUM_STAGES)]
                d["depth"] = self.expected_depths().tolist()
                if self.beta_end is not None:
                    d["end"] = [self.end_probs(s).tolist() for s in range(NUM_STAGES)]
        return d


# ---------------------------------------------------------------------- config glue
def hierarchical_space_from_config(cfg) -> HierarchicalSpace:
    level = cfg.hier_level
    sizes = (cfg.cells_per_stage,) * 3 if cfg.cells_per_stage else stage_sizes(cfg.layers)
    return HierarchicalSpace(
        cell_space=DartsSpace(tuple(cfg.primitives), cfg.steps, cfg.multiplier),
        search_cells=level in ("cell", "both"),
        search_stages=level in ("stage", "both"),
        sizes=tuple(sizes),
        link_primitives=tuple(cfg.link_primitives),
        window=cfg.stage_window,
        keep=cfg.link_keep,
        search_end=cfg.stage_end_search and level in ("stage", "both"),
        end_candidates=cfg.stage_end_candidates,
    )


def build_hierarchical_supernet(cfg, num_classes: int, in_channels: int) -> HierarchicalSupernet:
    """``SUPERNETS['hierarchical']``: the supernet a SearchConfig with ``space: hierarchical`` describes."""
    space = hierarchical_space_from_config(cfg)
    cell_relax = _relaxation(cfg.relaxation, cfg) if space.search_cells else None
    if cell_relax is not None and cfg.link_relaxation == cfg.relaxation:
        link_relax = cell_relax  # one schedule for both levels
    else:
        link_relax = _relaxation(cfg.link_relaxation, cfg)
    fixed = None
    if not space.search_cells:
        if not cfg.cell:
            raise ConfigError("cell: --preset hdas-stage searches stages for a fixed cell; pass --cell DARTS_V2 (a published name) or a genotype file")
        fixed = load_genotype(cfg.cell)
        if fixed.is_hierarchical:
            raise ConfigError(f"cell: {cfg.cell!r} is a hierarchical genotype; pass a plain cell genotype")
    return HierarchicalSupernet(
        space, cell_relax, link_relax, fixed=fixed, C=cfg.init_channels, num_classes=num_classes,
        in_channels=in_channels, stem_multiplier=cfg.stem_multiplier,
    )


def hdas_aux_step(cfg, model):
    """``ARCH_STEPS['hdas']``: the H-DAS auxiliary architecture step, or None when off.

    loss = depth_coef * -(D1 + D2 + D3) + size_coef * sum_s E[cells kept in stage s]
    """
    if getattr(cfg, "space", None) != "hierarchical" or not getattr(model, "searches_stages", False):
        return None
    use_depth = cfg.depth_coef > 0
    use_size = model.beta_end is not None and cfg.size_coef > 0
    if not (use_depth or use_size):
        return None

    def step(m: HierarchicalSupernet):
        loss, logs = None, {}
        if use_depth:
            depth = m.expected_depths().sum()
            loss = -cfg.depth_coef * depth
            logs["depth"] = depth.detach()
        if use_size:
            pen = m.size_penalty()
            loss = cfg.size_coef * pen if loss is None else loss + cfg.size_coef * pen
            logs["size_penalty"] = pen.detach()
        return loss, logs

    return step


def _register() -> None:
    from dnas.strategies.terms import ARCH_STEPS

    if "hdas" not in ARCH_STEPS:
        ARCH_STEPS.register("hdas", hdas_aux_step)
    from dnas.spaces.base import SUPERNET_BUILDERS

    if "hierarchical" not in SUPERNET_BUILDERS:
        SUPERNET_BUILDERS.register("hierarchical", build_hierarchical_supernet)


_register()
