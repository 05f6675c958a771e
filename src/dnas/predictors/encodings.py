"""Encodings of NB201 architectures for performance predictors.

Two views of the same cell:

* :func:`onehot` - the 6 edges x 5 ops one-hot matrix, flattened (30 values): the encoding
  that tabular predictors (MLP, random forest) use.
* :func:`nb201_dag` - the cell as a DAG whose *nodes are operations* (the usual NB201-to-
  DAG conversion of NAS-Bench-201 predictor papers such as Wen et al. 2020 and BRP-NAS):
  node 0 is the cell input, nodes 1-6 the six edge ops in arch-string order, node 7 the cell
  output. Op node ``k`` on edge ``i -> j`` receives from the input (if ``i == 0``) or from
  every op node whose edge ends at ``i``, and feeds every op node whose edge starts at ``j``,
  or the output if ``j == 3``. Node features are a one-hot over
  ``["input", *NB201_OPS, "output"]``. ``none`` ops stay as nodes: which edges are cut is
  itself informative, and pruning them measured worse (see the report in gcn.py).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dnas.spaces.nb201 import DAG_NODES, NB201_EDGES, NB201_OPS, NODE_TYPES, NB201Arch, nb201_dag, onehot, parse_arch  # noqa: F401


def dag_batch(archs: Sequence["NB201Arch | str"]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack :func:`nb201_dag` for a batch: ``A`` of shape (B, 8, 8), ``X`` of shape (B, 8, 7)."""
    pairs = [nb201_dag(a) for a in archs]
    A = torch.from_numpy(np.stack([p[0] for p in pairs]))
    X = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return A, X


def onehot_batch(archs: Sequence["NB201Arch | str"]) -> torch.Tensor:
    """Stack :func:`onehot` for a batch: shape (B, 30)."""
    return torch.from_numpy(np.stack([onehot(a) for a in archs]))
