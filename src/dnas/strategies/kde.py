"""The mixed-type product-kernel density estimator behind BOHB's model.

BOHB (Falkner et al. 2018) models each budget with two densities over configurations, ``l(x)``
over the good ones and ``g(x)`` over the rest, and proposes the sample that maximises
``l(x) / g(x)``. HpBandSter builds them with ``statsmodels.KDEMultivariate`` (``normal_reference``
bandwidths, Gaussian kernel for continuous and Aitchison-Aitken kernel for unordered
variables). This module re-implements that estimator with numpy so that dnas does not need
statsmodels, and fixes two of its sharp edges:

* the number of levels of a categorical variable comes from the search space, not from the
  values present in the data (statsmodels counts the distinct values it saw, so an unseen
  value gets an undefined density);
* discrete bandwidths are capped where the kernel becomes uniform (``(c-1)/c`` for
  Aitchison-Aitken), because ``normal_reference`` applied to integer codes can exceed 1 and
  statsmodels then returns negative kernel values.

Variables are given by a type string like statsmodels: ``'c'`` continuous on ``[0, 1]``
(ConfigSpace's vector form of floats and integers), ``'u'`` unordered categorical (index),
``'o'`` ordered (index, Wang-Ryzin kernel, normalised over the finite set of levels).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.special import ndtr

_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


def normal_reference_bandwidth(data: np.ndarray) -> np.ndarray:
    """Scott's rule as statsmodels' ``normal_reference``: ``1.06 * std * n ** (-1 / (4 + d))``."""
    n, d = data.shape
    return 1.06 * np.std(data, axis=0) * n ** (-1.0 / (4 + d))


class ProductKDE:
    """A product-kernel KDE over mixed continuous / categorical / ordinal vectors.

    ``data`` is ``(n, d)``; ``vartypes`` a string of ``'c'``, ``'u'``, ``'o'``; ``levels[j]`` the
    number of values of discrete variable ``j`` (ignored for ``'c'``).
    """

    def __init__(
        self,
        data: np.ndarray,
        vartypes: str,
        levels: Sequence[int],
        *,
        min_bandwidth: float = 1e-3,
    ) -> None:
        data = np.asarray(data, dtype=float)
        if data.ndim != 2 or data.shape[1] != len(vartypes) or len(levels) != len(vartypes):
            raise ValueError("ProductKDE: data must be (n, d) with one vartype and level count per column")
        if not set(vartypes) <= {"c", "u", "o"}:
            raise ValueError(f"ProductKDE: unknown vartype in {vartypes!r}; use 'c', 'u' or 'o'")
        self.data = data
        self.vartypes = vartypes
        self.levels = np.asarray(levels, dtype=int)
        bw = np.maximum(normal_reference_bandwidth(data), min_bandwidth)
        for j, t in enumerate(vartypes):
            if t == "u":
                c = max(int(self.levels[j]), 1)
                bw[j] = min(bw[j], (c - 1) / c) if c > 1 else min_bandwidth
            elif t == "o":
                bw[j] = min(bw[j], 0.99)
        self.bw = bw

    # ------------------------------------------------------------------ kernels
    def _kernel(self, j: int, x: np.ndarray, centres: np.ndarray, bw: float, *, sampling: bool) -> np.ndarray:
        """Kernel values ``k_j(x_m | centre_i)`` as an ``(m, n)`` array.

        With ``sampling=True`` the kernel is the proposal distribution BOHB samples from
        (HpBandSter's rules: truncated normal for continuous variables, "keep the value with
        probability 1-bw, else draw uniformly" for categoricals); otherwise it is the density
        kernel used by ``l(x)`` and ``g(x)``.
        """
        t = self.vartypes[j]
        diff = x[:, None] - centres[None, :]
        if t == "c":
            dens = np.exp(-0.5 * (diff / bw) ** 2) / (_SQRT_2PI * bw)
            if sampling:  # truncated to [0, 1]
                mass = ndtr((1.0 - centres) / bw) - ndtr((0.0 - centres) / bw)
                dens = dens / np.maximum(mass, 1e-300)[None, :]
            return dens
        c = max(int(self.levels[j]), 1)
        same = np.isclose(diff, 0.0)
        if t == "u":
            if c == 1:
                return np.ones_like(diff)
            if sampling:
                return np.where(same, 1.0 - bw + bw / c, bw / c)
            return np.where(same, 1.0 - bw, bw / (c - 1))
        # 'o': Wang-Ryzin, normalised over the c levels so that it is a proper pmf
        raw = np.where(same, 1.0 - bw, 0.5 * (1.0 - bw) * bw ** np.abs(diff))
        grid = np.arange(c)[:, None] - centres[None, :]
        norm = np.where(np.isclose(grid, 0.0), 1.0 - bw, 0.5 * (1.0 - bw) * bw ** np.abs(grid)).sum(axis=0)
        return raw / norm[None, :]

    def _density(self, X: np.ndarray, *, sampling: bool, bandwidth_factor: float = 1.0) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=float))
        prod = np.ones((X.shape[0], self.data.shape[0]))
        for j, t in enumerate(self.vartypes):
            bw = self.bw[j] * (bandwidth_factor if (sampling and t == "c") else 1.0)
            prod *= self._kernel(j, X[:, j], self.data[:, j], bw, sampling=sampling)
        return prod.mean(axis=1)

    def pdf(self, X: np.ndarray) -> np.ndarray:
        """The density at each row of ``X`` (the ``l(x)`` / ``g(x)`` of the BOHB paper)."""
        return self._density(X, sampling=False)

    def sampling_pdf(self, X: np.ndarray, bandwidth_factor: float) -> np.ndarray:
        """Density of :meth:`sample`'s draws at each row of ``X`` (used to sample a finite pool)."""
        return self._density(X, sampling=True, bandwidth_factor=bandwidth_factor)

    # ------------------------------------------------------------------ sampling
    def sample(self, rng: np.random.Generator, n: int, bandwidth_factor: float) -> np.ndarray:
        """Draw ``n`` vectors as HpBandSter does: pick a random data point, then perturb each
        coordinate with its kernel; continuous bandwidths are widened by ``bandwidth_factor``
        (truncated normal on [0, 1]); categoricals keep their value with probability ``1 - bw``,
        else take a uniformly random level; ordinals draw from the Wang-Ryzin kernel."""
        out = np.empty((n, self.data.shape[1]))
        for i in range(n):
            datum = self.data[rng.integers(len(self.data))]
            for j, t in enumerate(self.vartypes):
                m, bw = float(datum[j]), float(self.bw[j])
                if t == "c":
                    bw *= bandwidth_factor
                    out[i, j] = _truncnorm01(rng, m, bw)
                elif t == "u":
                    c = max(int(self.levels[j]), 1)
                    out[i, j] = m if rng.random() < 1.0 - bw else float(rng.integers(c))
                else:
                    c = max(int(self.levels[j]), 1)
                    p = self._kernel(j, np.arange(c, dtype=float), np.array([m]), bw, sampling=True)[:, 0]
                    out[i, j] = float(rng.choice(c, p=p / p.sum()))
        return out


def _truncnorm01(rng: np.random.Generator, mean: float, sd: float) -> float:
    """One draw of N(mean, sd) truncated to [0, 1], by inverting the CDF (no rejection loop, so
    the number of random numbers consumed, and hence determinism, does not depend on luck)."""
    from scipy.special import ndtri

    lo, hi = ndtr((0.0 - mean) / sd), ndtr((1.0 - mean) / sd)
    u = lo + rng.random() * (hi - lo)
    u = min(max(u, 1e-300), 1.0 - 1e-16)
    return float(np.clip(mean + sd * ndtri(u), 0.0, 1.0))
