"""The one-shot network of the DARTS cell space under a relaxation.

It owns the architecture parameters (``alpha`` per cell type, plus ``beta`` edge parameters for
relaxations that use them) and keeps them apart from the weights, because the bilevel search
updates the two on different data splits with different optimizers.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.genotype import Genotype
from dnas.ops import FactorizedReduce, ReLUConvBN
from dnas.relax.base import Relaxation
from dnas.spaces.darts import DartsSpace


class SearchCell(nn.Module):
    def __init__(self, space: DartsSpace, relax: Relaxation, C_pp: int, C_p: int, C: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.steps = space.steps
        self.multiplier = space.multiplier
        self.preprocess0 = FactorizedReduce(C_pp, C, affine=False) if reduction_prev else ReLUConvBN(C_pp, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList()
        for i in range(self.steps):
            for j in range(i + 2):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(relax.mixed_op(C, stride, space.primitives))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, edge_w: torch.Tensor | None) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            s = None
            for j, h in enumerate(states):
                edge = self.edges[offset + j]
                if edge_w is not None and getattr(edge, "takes_edge_weight", False):
                    # the mixed op applies the edge scalar where it costs no stored copy
                    y = edge(h, weights[offset + j], edge_weight=edge_w[offset + j])
                else:
                    y = edge(h, weights[offset + j])
                    if edge_w is not None:
                        y = edge_w[offset + j] * y
                s = y if s is None else s + y
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.multiplier :], dim=1)


class ArchWeightSplit:
    """Mixin for supernets: everything that is not in ``arch_parameters()`` is a weight.

    The bilevel search updates the two groups with different optimizers on different splits,
    so every supernet (DARTS, hierarchical, FBNetV2) exposes both through these methods."""

    def arch_parameters(self) -> list[nn.Parameter]:  # pragma: no cover - each supernet defines it
        raise TypeError(f"{type(self).__name__} must define arch_parameters()")

    def named_weights(self) -> Iterator[tuple[str, nn.Parameter]]:
        arch = {id(p) for p in self.arch_parameters()}
        for n, p in self.named_parameters():  # type: ignore[attr-defined]
            if id(p) not in arch:
                yield n, p

    def weights(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_weights()]


class Supernet(ArchWeightSplit, nn.Module):
    """DARTS-style search network: stem, ``layers`` search cells (reductions at 1/3 and 2/3 of
    depth), global pooling, classifier."""

    def __init__(
        self,
        space: DartsSpace,
        relax: Relaxation,
        *,
        C: int = 16,
        layers: int = 8,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        self.space, self.relax = space, relax
        self.steps = space.steps
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = layers >= 3 and i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            cell = SearchCell(space, relax, C_pp, C_p, C_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            C_pp, C_p = C_p, space.multiplier * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

        E, K = space.num_edges, len(space.primitives)
        # Architecture parameters, initialised 1e-3 * N(0, 1) as in the reference code.
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(E, K))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(E, K))
        if relax.uses_edge_params:
            # One scalar per edge (PC-DARTS), or whatever shape the relaxation asks for
            # (TopoNAS: one logit per pair of a node's inputs).
            shape = relax.edge_param_shape(self.steps)
            self.beta_normal = nn.Parameter(1e-3 * torch.randn(*shape))
            self.beta_reduce = nn.Parameter(1e-3 * torch.randn(*shape))
        else:
            self.beta_normal = self.beta_reduce = None

    # -------------------------------------------------------------- parameter groups
    def arch_parameters(self) -> list[nn.Parameter]:
        ps = [self.alpha_normal, self.alpha_reduce]
        if self.beta_normal is not None:
            ps += [self.beta_normal, self.beta_reduce]
        return ps

    # -------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.relax
        w_n = r.op_weights(self.alpha_normal, training=self.training)
        w_r = r.op_weights(self.alpha_reduce, training=self.training)
        e_n = r.forward_edge_weights(self.beta_normal, self.steps, training=self.training)
        e_r = r.forward_edge_weights(self.beta_reduce, self.steps, training=self.training)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            if cell.reduction:
                s0, s1 = s1, cell(s0, s1, w_r, e_r)
            else:
                s0, s1 = s1, cell(s0, s1, w_n, e_n)
        out = self.global_pooling(s1)
        return self.classifier(out.flatten(1))

    # -------------------------------------------------------------- derivation
    def derive_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return (
                self.relax.derive_weights(self.alpha_normal, self.beta_normal, self.steps),
                self.relax.derive_weights(self.alpha_reduce, self.beta_reduce, self.steps),
            )

    def genotype(self, **meta) -> Genotype:
        w_n, w_r = self.derive_weights()
        return self.space.derive(w_n, w_r, **meta)

    def arch_summary(self) -> dict:
        """Softmaxed op weights per edge (and edge weights), as plain lists for the event log."""
        with torch.no_grad():
            d = {
                "normal": F.softmax(self.alpha_normal, -1).tolist(),
                "reduce": F.softmax(self.alpha_reduce, -1).tolist(),
            }
            if self.beta_normal is not None:
                d["edge_normal"] = self.relax.edge_weights(self.beta_normal, self.steps).tolist()
                d["edge_reduce"] = self.relax.edge_weights(self.beta_reduce, self.steps).tolist()
        return d
