"""Neural performance predictors: the shared training recipe and the MLP baseline.

:class:`NeuralPredictor` holds what the GCN (:mod:`dnas.predictors.gcn`) and the MLP share, so
that comparing them compares encodings, not training tricks:

* targets are standardised on the training set (accuracies span 10-91% on NB201; a few
  collapsed archs would otherwise dominate an MSE loss);
* ``loss`` is ``"mse"``, ``"rank"`` (pairwise logistic loss over all ordered training pairs,
  as in BRP-NAS: a search only needs the *order* of candidates) or ``"both"`` (their sum);
* full-batch Adam for ``epochs`` steps - the training sets are tens to hundreds of archs;
* an ensemble of ``ensemble`` members with seeds derived from ``seed``; each member's outputs
  are standardised with its own statistics on the training set before averaging, so members
  trained with a scale-free ranking loss can be averaged;
* all randomness comes from ``seed`` and the global torch RNG state is left untouched.

``predict`` returns accuracy-scaled scores (``mean + std * score`` of the training targets):
with ``loss="mse"`` they estimate accuracy, with the ranking loss only their order matters.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.errors import ConfigError

LOSSES = ("mse", "rank", "both")


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the previous setting.

    The predictors' tensors are tiny (a few hundred graphs of 8 nodes); on a loaded machine,
    torch's thread pool only adds synchronisation: one GCN fit measured 3 s on one thread and
    49 s on two with other processes competing for the cores.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class NeuralPredictor:
    """Base class: subclasses define :meth:`build` (one fresh model) and :meth:`features`."""

    #: Ways the model can join proxy features to the graph (the first is the default).
    fusions: tuple[str, ...] = ("concat",)

    def __init__(
        self,
        *,
        seed: int = 0,
        loss: str = "rank",
        epochs: int = 200,
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        hidden: int = 64,
        ensemble: int = 3,
        space: Any = "nb201",
        features: str = "graph",
        zc: Any = None,
        zc_min_tau: float = 0.3,
        fusion: str = "concat",
        cv_folds: int = 3,
    ):
        if loss not in LOSSES:
            raise ConfigError(f"predictor loss: must be one of {', '.join(LOSSES)}, got {loss!r}")
        if epochs < 0 or ensemble < 1 or hidden < 1:
            raise ConfigError("predictor: epochs must be >= 0, ensemble >= 1 and hidden >= 1")
        self.seed, self.loss, self.epochs, self.lr = int(seed), loss, int(epochs), float(lr)
        self.weight_decay, self.hidden, self.ensemble = float(weight_decay), int(hidden), int(ensemble)
        self.members: list[tuple[nn.Module, float, float]] = []
        self.y_mean, self.y_std = 0.0, 1.0
        from dnas.spaces.base import get_space

        #: The space whose encodings the predictor reads (any :class:`~dnas.spaces.base.SearchSpace`).
        self.space = get_space(space)
        self.n_features = 0
        from dnas.predictors.zcfeatures import check_features

        #: ``graph`` (the space's graph / one-hot), ``zc`` (proxy scores only) or ``graph+zc``.
        self.feature_set = features
        self.use_graph, self.use_zc = check_features(features, zc)
        self.zc = zc  # a ZCFeatures; fitted on the training archs in fit()
        self._zc = None
        self.n_zc = 0
        #: Keep only proxies whose |Kendall tau| with accuracy on the *training* archs reaches
        #: this (at least the best one): on the DARTS space most proxies barely rank the archs
        #: (tau < 0.3) and, as extra inputs of a small net trained on 100 archs, only add noise.
        self.zc_min_tau = float(zc_min_tau)
        if fusion != "auto" and fusion not in self.fusions:
            raise ConfigError(f"predictor fusion: must be auto or one of {', '.join(self.fusions)}, got {fusion!r}")
        if cv_folds < 2:
            raise ConfigError(f"predictor cv_folds: must be >= 2, got {cv_folds}")
        #: How proxy features join the graph (``graph+zc`` only): a subclass's :attr:`fusions`, or
        #: ``auto``: the one with the best mean Kendall tau over ``cv_folds`` folds of the
        #: training archs (one member per fold; decided on the training split alone). Measured
        #: (GCN, 100 training archs, 3 seeds): concat NB201 0.772 / DARTS 0.766, gated 0.751 /
        #: 0.779, auto 0.765 / 0.771 - the folds of 33 archs are too noisy to choose reliably.
        self.fusion, self.cv_folds = fusion, int(cv_folds)
        self.fusion_used = self.fusions[0]
        #: ``{fusion: mean fold tau}`` of the last ``auto`` choice (empty when nothing was chosen).
        self.fusion_scores: dict[str, float] = {}

    def _archs(self, archs: Sequence[Any]) -> list[Any]:
        return [self.space.parse(a) for a in archs]

    # ------------------------------------------------------------------ subclass hooks
    def build(self) -> nn.Module:
        raise NotImplementedError("subclasses build their model")  # pragma: no cover

    def features(self, archs: Sequence[Any]) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError("subclasses encode architectures")  # pragma: no cover

    def _inputs(self, archs: Sequence[Any]) -> tuple[torch.Tensor, ...]:
        """The model's inputs: the subclass's graph features and/or the proxy features."""
        graph = self.features(archs) if self.use_graph else ()
        extra = (torch.from_numpy(self._zc.transform(archs)),) if self.use_zc else ()
        return (*graph, *extra)

    def _model(self) -> nn.Module:
        # proxies alone: the same MLP for every predictor (there is no graph to convolve)
        return self.build() if self.use_graph else MLP(self.n_zc, self.hidden)

    # ------------------------------------------------------------------ training
    def _loss(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = pred.new_zeros(())
        if self.loss in ("mse", "both"):
            out = out + F.mse_loss(pred, y)
        if self.loss in ("rank", "both"):
            diff = pred[:, None] - pred[None, :]
            sign = torch.sign(y[:, None] - y[None, :])
            mask = sign != 0
            if mask.any():
                out = out + F.softplus(-sign[mask] * diff[mask]).mean()
        return out

    def _choose_fusion(self, archs: Sequence[Any], accuracies: Sequence[float]) -> str:
        """``fusion="auto"``: cross-validate each fusion on the training archs (one member per fold)."""
        if self.fusion != "auto":
            return self.fusion
        if not (self.use_graph and self.use_zc) or len(self.fusions) < 2 or len(archs) < 2 * self.cv_folds:
            return self.fusions[0]
        from dnas.predictors.metrics import kendall_tau

        acc = np.asarray(accuracies, dtype=np.float64)
        folds = np.array_split(np.random.default_rng(self.seed).permutation(len(archs)), self.cv_folds)
        scores = {}
        for fusion in self.fusions:
            taus = []
            for k, te in enumerate(folds):
                tr = np.concatenate([f for j, f in enumerate(folds) if j != k])
                sub = copy.copy(self)
                sub.fusion, sub.ensemble, sub.seed = fusion, 1, self.seed * 7919 + k
                sub.fit([archs[i] for i in tr], acc[tr])
                taus.append(kendall_tau(sub.predict([archs[i] for i in te]), acc[te]))
            scores[fusion] = float(np.mean(taus))
        self.fusion_scores = scores
        return max(self.fusions, key=lambda f: scores[f])  # ties: the first (concat)

    def fit(self, archs: Sequence[Any], accuracies: Sequence[float]) -> "NeuralPredictor":
        """Train the ensemble on ``archs`` and their accuracies."""
        y = torch.as_tensor(np.asarray(accuracies, dtype=np.float32))
        if len(archs) != len(y) or len(y) < 2:
            raise ConfigError(f"predictor fit: need >= 2 archs with one accuracy each, got {len(archs)} and {len(y)}")
        self.fusion_used = self._choose_fusion(list(archs), accuracies)
        self.y_mean = float(y.mean())
        self.y_std = float(y.std()) or 1.0
        yn = (y - self.y_mean) / self.y_std
        archs = self._archs(archs)
        self._zc = self.zc.fit(archs, np.asarray(accuracies, dtype=np.float64), self.zc_min_tau) if self.use_zc else None
        self.n_zc = self._zc.width if self._zc is not None else 0
        feats = self._inputs(archs)
        self.n_features = int(feats[-1 - int(self.use_zc)].shape[-1]) if self.use_graph else 0
        self.members = []
        with torch.random.fork_rng(devices=[]), single_thread():
            for m in range(self.ensemble):
                torch.manual_seed(self.seed * 1009 + m)
                model = self._model()
                opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
                model.train()
                for _ in range(self.epochs):
                    opt.zero_grad()
                    self._loss(model(*feats), yn).backward()
                    opt.step()
                model.eval()
                with torch.no_grad():
                    out = model(*feats)
                self.members.append((model, float(out.mean()), float(out.std()) or 1.0))
        return self

    def predict_members(self, archs: Sequence[Any]) -> np.ndarray:
        """``(members, archs)`` accuracy-scaled scores of each ensemble member: their spread
        is the ensemble's uncertainty (BANANAS's acquisition reads it)."""
        if not self.members:
            raise ConfigError("predictor: call fit() before predict()")
        feats = self._inputs(self._archs(archs))
        rows = []
        with torch.no_grad(), single_thread():
            for model, mu, sd in self.members:
                out = model(*feats)
                rows.append(out if self.loss == "mse" else (out - mu) / sd)
        return (self.y_mean + self.y_std * torch.stack(rows)).numpy().astype(np.float64)

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        """Accuracy-scaled scores for ``archs`` (higher = predicted better): the ensemble mean."""
        return self.predict_members(archs).mean(0)


class MLP(nn.Module):
    """Two hidden ReLU layers on flat features (several inputs are concatenated: one-hot and
    proxy features)."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, *x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat(x, dim=-1) if len(x) > 1 else x[0]).squeeze(-1)


class MLPPredictor(NeuralPredictor):
    """The baseline: an MLP on the flat one-hot of the space's categorical encoding
    (:meth:`~dnas.spaces.base.SearchSpace.onehot`; NB201: 6 edges x 5 ops = 30 values)."""

    def build(self) -> nn.Module:
        return MLP(self.n_features + self.n_zc, self.hidden)

    def features(self, archs: Sequence[Any]) -> tuple[torch.Tensor, ...]:
        return (torch.from_numpy(np.stack([self.space.onehot(a) for a in archs])),)
