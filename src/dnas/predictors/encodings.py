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

from dnas.spaces.nb201 import NB201_EDGES, NB201_OPS, NB201Arch, parse_arch

#: Node types of the DAG encoding (columns of the node-feature matrix).
NODE_TYPES: tuple[str, ...] = ("input", *NB201_OPS, "output")
DAG_NODES = len(NB201_EDGES) + 2


def onehot(arch: "NB201Arch | str") -> np.ndarray:
    """The flattened 6x5 edge-op one-hot matrix (float32, length 30)."""
    a = parse_arch(arch)
    m = np.zeros((len(NB201_EDGES), len(NB201_OPS)), np.float32)
    for k, op in enumerate(a.ops):
        m[k, NB201_OPS.index(op)] = 1.0
    return m.reshape(-1)


def _dag_adjacency() -> np.ndarray:
    """The op-node adjacency is the same for every NB201 arch; only node features differ."""
    A = np.zeros((DAG_NODES, DAG_NODES), np.float32)
    out = DAG_NODES - 1
    for k, (src, dst) in enumerate(NB201_EDGES):
        if src == 0:
            A[0, k + 1] = 1.0
        for k2, (src2, _) in enumerate(NB201_EDGES):
            if src2 == dst:
                A[k + 1, k2 + 1] = 1.0
        if dst == 3:
            A[k + 1, out] = 1.0
    return A


_ADJ = _dag_adjacency()


def nb201_dag(arch: "NB201Arch | str") -> tuple[np.ndarray, np.ndarray]:
    """``(A, X)``: the 8x8 directed adjacency (``A[u, v] = 1`` for ``u -> v``) and the 8x7
    node-type one-hot matrix of the op-node DAG (see module docstring)."""
    a = parse_arch(arch)
    X = np.zeros((DAG_NODES, len(NODE_TYPES)), np.float32)
    X[0, 0] = 1.0
    X[-1, -1] = 1.0
    for k, op in enumerate(a.ops):
        X[k + 1, 1 + NB201_OPS.index(op)] = 1.0
    return _ADJ.copy(), X


def dag_batch(archs: Sequence["NB201Arch | str"]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack :func:`nb201_dag` for a batch: ``A`` of shape (B, 8, 8), ``X`` of shape (B, 8, 7)."""
    pairs = [nb201_dag(a) for a in archs]
    A = torch.from_numpy(np.stack([p[0] for p in pairs]))
    X = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return A, X


def onehot_batch(archs: Sequence["NB201Arch | str"]) -> torch.Tensor:
    """Stack :func:`onehot` for a batch: shape (B, 30)."""
    return torch.from_numpy(np.stack([onehot(a) for a in archs]))
