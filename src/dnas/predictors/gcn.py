"""A graph-convolutional accuracy predictor on the NB201 op-node DAG (plain PyTorch).

Follows the neural predictor of Wen et al. 2020 ("Neural Predictor for Neural Architecture
Search") and BRP-NAS (Dudziak et al. 2020): node features are op one-hots
(:func:`~dnas.predictors.encodings.nb201_dag`); each layer propagates along the edges in both
directions with separate weights, ``H' = ReLU((Â_f H W_f + Â_b H W_b) / 2)``, where ``Â`` is
the symmetrically normalised adjacency with self loops (``D^-1/2 (A + I) D^-1/2``) of the
forward / reversed graph; a readout (mean over nodes, or the output node) feeds an MLP head.
Training, ranking loss and ensembling come from :class:`~dnas.predictors.mlp.NeuralPredictor`.

Measured on the 725 shipped NB201 records (100 training archs, Kendall tau on the other 625,
3 seeds): ranking by parameter count gives 0.56; this GCN with the ranking loss about 0.68; see
``dnas predictor evaluate``. Dropping ``none`` op nodes' edges measured worse (~0.63).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from dnas.errors import ConfigError
from dnas.predictors.mlp import NeuralPredictor


def normalize_adjacency(A: torch.Tensor) -> torch.Tensor:
    """``D^-1/2 (A + I) D^-1/2`` for a batch of adjacency matrices of shape (B, N, N)."""
    M = A + torch.eye(A.shape[-1], dtype=A.dtype)
    d = M.sum(-1).clamp(min=1.0).pow(-0.5)
    return d[..., :, None] * M * d[..., None, :]


class GCN(nn.Module):
    """Bidirectional graph convolutions, a readout and an MLP head producing one score per graph.

    ``n_extra`` node-independent features per graph (zero-cost proxy scores) pass through their
    own layer (linear + ReLU to ``hidden`` units) and are concatenated to the readout before
    the head: the graph says what the cell is, the proxies how its untrained network behaves.
    Measured on the shipped records (100 training archs, Kendall tau on the rest, 3 seeds; the
    predictor's default proxy selection, |tau| >= 0.3 on the training archs): NB201 0.771 with
    this layer vs 0.737 concatenating the raw features (no selection); a purely linear proxy
    term was worse on NB201 (0.691), where the proxies' relation to accuracy is far from linear.

    ``fusion="gated"`` multiplies the proxy layer's output by ``tanh(g)`` with a learnt scalar
    ``g`` that starts at 0, so training starts from the graph-only model and opens the proxy
    path only as far as it lowers the training loss. On the DARTS-space records, where the
    proxies rank the archs poorly (best |tau| 0.42, nwot) and mostly repeat what the graph says
    (params, flops, l2_norm), plain concatenation lost to the graph alone (0.766 vs 0.775) and
    the gate won (0.779); on NB201 the gate under-uses strong proxies (0.751 vs 0.772).
    :class:`~dnas.predictors.mlp.NeuralPredictor` (``fusion="auto"``) picks between the two by
    cross-validation on the training archs."""

    FUSIONS = ("concat", "gated")

    def __init__(self, n_features: int, hidden: int = 64, layers: int = 3, readout: str = "mean", n_extra: int = 0,
                 fusion: str = "concat"):
        super().__init__()
        if readout not in ("mean", "output"):
            raise ConfigError(f"gcn readout: must be 'mean' or 'output', got {readout!r}")
        if fusion not in self.FUSIONS:
            raise ConfigError(f"gcn fusion: must be one of {', '.join(self.FUSIONS)}, got {fusion!r}")
        self.gate = nn.Parameter(torch.zeros(1)) if fusion == "gated" and n_extra else None
        dims = [n_features] + [hidden] * layers
        self.fw = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.bw = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.extra = nn.Sequential(nn.Linear(n_extra, hidden), nn.ReLU()) if n_extra else None
        self.head = nn.Sequential(nn.Linear(hidden * (2 if n_extra else 1), hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.readout = readout

    def forward(self, A: torch.Tensor, X: torch.Tensor, Z: torch.Tensor | None = None) -> torch.Tensor:
        # A[u, v] = 1 for u -> v, so node v gathers its predecessors through A^T.
        A_fwd = normalize_adjacency(A.transpose(-1, -2))
        A_bwd = normalize_adjacency(A)
        H = X
        for f, b in zip(self.fw, self.bw):
            H = torch.relu(0.5 * (A_fwd @ f(H) + A_bwd @ b(H)))
        z = H.mean(dim=1) if self.readout == "mean" else H[:, -1]
        if Z is not None and self.extra is not None:
            e = self.extra(Z)
            z = torch.cat([z, e if self.gate is None else torch.tanh(self.gate) * e], dim=-1)
        return self.head(z).squeeze(-1)


class GCNPredictor(NeuralPredictor):
    """GCN on the op-node DAG; options as :class:`NeuralPredictor` plus ``layers`` and ``readout``."""

    fusions = GCN.FUSIONS

    def __init__(self, *, layers: int = 3, readout: str = "mean", **kwargs: Any):
        super().__init__(**kwargs)
        if layers < 1:
            raise ConfigError(f"gcn layers: must be >= 1, got {layers}")
        self.layers, self.readout = int(layers), readout
        GCN(1, 1, 1, readout)  # validate readout early

    def build(self) -> nn.Module:
        return GCN(self.n_features, self.hidden, self.layers, self.readout, n_extra=self.n_zc, fusion=self.fusion_used)

    def features(self, archs: Sequence[Any]) -> tuple[torch.Tensor, ...]:
        """``(A, X)`` batches of the space's op-node DAGs (:meth:`~dnas.spaces.base.SearchSpace.graph`)."""
        pairs = [self.space.graph(a) for a in archs]
        A = torch.from_numpy(np.stack([p[0] for p in pairs]))
        X = torch.from_numpy(np.stack([p[1] for p in pairs]))
        return A, X
