"""Zero-cost proxies: scores of an untrained network that rank architectures without training.

Thirteen proxies, one registry (:data:`PROXIES`, ``name -> fn(model, x, y, *, loss_fn,
generator) -> float``), grouped by family in small modules:

=============  ==============================================  ==============
module         proxies                                         needs data
=============  ==============================================  ==============
gradient.py    snip, grasp, fisher, grad_norm, plain           yes
activation.py  jacov, epe_nas, nwot                            yes (labels: epe_nas)
synflow.py     synflow                                         no
static.py      l2_norm, params, flops, zen                     no
=============  ==============================================  ==============

:class:`ProxyScorer` scores architectures of any space (``space.build``) on one seeded batch.
Conventions (layers that count, BatchNorm mode, batch size, dtype) are in :mod:`.base` and
:mod:`.scorer`; each proxy's definition and paper are in its module's docstring.
"""
from __future__ import annotations

from dnas.predictors.zerocost import activation, gradient, static, synflow  # noqa: F401  (registration)
from dnas.predictors.zerocost.base import DATA_INDEPENDENT, PROXIES, register_proxy
from dnas.predictors.zerocost.scorer import ProxyScorer, parse_proxies, parse_shape, score_network

#: The proxies NAS-Bench-Suite-Zero publishes (and dnas computes), in its order.
PROXY_NAMES = ("synflow", "snip", "grasp", "fisher", "grad_norm", "jacov", "nwot", "epe_nas", "zen", "plain",
               "l2_norm", "params", "flops")

__all__ = ["PROXIES", "PROXY_NAMES", "DATA_INDEPENDENT", "ProxyScorer", "parse_proxies", "parse_shape", "register_proxy",
           "score_network"]
