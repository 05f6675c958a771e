"""Score architectures of any space with zero-cost proxies: build, pick a batch, run proxies.

:class:`ProxyScorer` is the one place that turns ``(space, arch)`` into proxy scores, through
the space interface only (``space.parse`` and ``space.build``), so every space that builds an
evaluation network can be scored.

Choices (all documented because they change the numbers):

* **Initialisation**: the network is built under ``torch.manual_seed(seed)`` (PyTorch's default
  initialisation, as NASLib uses), in a forked RNG so the caller's stream is untouched; the
  same ``seed`` gives the same weights, hence the same scores.
* **Batch**: ``batch_size`` (default 64, NAS-Bench-Suite-Zero's setting) images drawn without
  replacement from the training images by a generator seeded with ``seed`` (NASLib's
  ``dataload="random"``, one batch), normalised with the data's per-channel mean/std. The same
  batch is used for every architecture, so rankings compare like with like.
* **dtype**: float32 for every proxy except synflow (float64, see :mod:`.synflow`).
* **Without data** (``input_shape`` only): the data-independent proxies (synflow, l2_norm,
  params, flops, zen) run on a placeholder batch of that shape whose values they never read;
  asking for a data-dependent one is a one-line error.
* A proxy that fails numerically on an architecture (e.g. jacov's eigen-decomposition) gives NaN,
  which the records writer stores as ``null``.
"""
from __future__ import annotations

import math
from typing import Any, Hashable, Sequence

import torch
import torch.nn.functional as F

from dnas.errors import ConfigError
from dnas.predictors.zerocost.base import DATA_INDEPENDENT, PROXIES
from dnas.spaces.base import SearchSpace, get_space


def parse_proxies(names: "str | Sequence[str]") -> list[str]:
    """``"synflow,nwot"`` or a list -> validated proxy names (one-line error for unknown ones)."""
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n).strip() for n in names]
    items = [n for n in items if n]
    if not items:
        raise ConfigError(f"proxies: give at least one of: {', '.join(sorted(PROXIES.names()))}")
    for n in items:
        PROXIES.get(n, "proxies")
    return list(dict.fromkeys(items))


def parse_shape(text: "str | Sequence[int] | None") -> tuple[int, int, int] | None:
    """``"3,32,32"`` -> ``(3, 32, 32)``."""
    if text is None:
        return None
    try:
        parts = [int(p) for p in text.split(",")] if isinstance(text, str) else [int(p) for p in text]
    except ValueError:
        parts = []
    if len(parts) != 3 or min(parts) < 1:
        raise ConfigError(f"input-shape: expected C,H,W with positive integers, got {text!r}; e.g. 3,32,32")
    return parts[0], parts[1], parts[2]


def score_network(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, proxies: "str | Sequence[str]", *,
                  seed: int = 0, loss_fn=F.cross_entropy) -> dict[str, float]:
    """``{proxy: score}`` of any untrained network on the batch ``(x, y)``: the entry point
    for networks that no registered space builds (NaN where a proxy failed numerically)."""
    if not isinstance(net, LogitsOnly):
        net = LogitsOnly(net)
    net.train()
    out: dict[str, float] = {}
    for name in parse_proxies(proxies):
        fn = PROXIES.get(name, "proxies")
        gen = torch.Generator().manual_seed(int(seed))
        try:
            out[name] = float(fn(net, x, y, loss_fn=loss_fn, generator=gen))
        except (RuntimeError, FloatingPointError, ValueError):
            out[name] = math.nan
    return out


class LogitsOnly(torch.nn.Module):
    """The network with its extra outputs dropped (the DARTS CIFAR network returns
    ``(logits, aux_logits)``): every proxy sees one logits tensor."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[0] if isinstance(out, (tuple, list)) else out


class ProxyScorer:
    """Proxy scores of architectures of ``space`` on one fixed batch (cached per architecture)."""

    def __init__(
        self,
        space: "str | SearchSpace",
        proxies: "str | Sequence[str]",
        *,
        data: "str | None" = None,
        input_shape: "str | Sequence[int] | None" = None,
        num_classes: int | None = None,
        batch_size: int = 64,
        seed: int = 0,
        net_opts: dict[str, Any] | None = None,
    ) -> None:
        self.space = get_space(space)
        self.proxies = parse_proxies(proxies)
        self.seed, self.net_opts = int(seed), dict(net_opts or {})
        if batch_size < 2:
            raise ConfigError(f"batch-size: must be >= 2 (jacov/nwot compare images), got {batch_size}")
        shape = parse_shape(input_shape)
        g = torch.Generator().manual_seed(self.seed)
        if data is None:
            needs = [p for p in self.proxies if p not in DATA_INDEPENDENT]
            if needs:
                raise ConfigError(
                    f"proxies: {', '.join(needs)} need data; pass --data D (without data only "
                    f"{', '.join(sorted(DATA_INDEPENDENT))} run)"
                )
            shape = shape or tuple(self.space.input_shape)
            self.x = torch.zeros((batch_size, *shape))
            self.y = torch.zeros(batch_size, dtype=torch.long)
            self.num_classes = int(num_classes or 10)
        else:
            from dnas.data import load_dataset

            ds = load_dataset(data, image_size=shape[1] if shape else None)
            n = min(batch_size, len(ds))
            idx = torch.randperm(len(ds), generator=g)[:n]
            mean, std = ds.stats()
            x = (ds.x[idx] - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).clamp(min=1e-6).view(1, -1, 1, 1)
            if shape and shape[0] != x.shape[1]:
                if x.shape[1] != 1:
                    raise ConfigError(f"input-shape: {shape[0]} channels, but data {data} has {x.shape[1]}; drop --input-shape")
                x = x.repeat(1, shape[0], 1, 1)  # grey images as colour: the same value in every channel
            self.x, self.y = x.contiguous(), ds.y[idx]
            self.num_classes = int(num_classes or ds.num_classes)
            if int(self.y.max()) >= self.num_classes:
                raise ConfigError(f"num-classes: {self.num_classes} is fewer than the data's {ds.num_classes} classes")
        self.in_channels = int(self.x.shape[1])
        self._cache: dict[Hashable, dict[str, float]] = {}

    def build(self, arch: Any) -> torch.nn.Module:
        """The seeded evaluation network of ``arch`` (train mode)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = self.space.build(arch, num_classes=self.num_classes, in_channels=self.in_channels, **self.net_opts)
        return LogitsOnly(net).train()

    def score(self, arch: Any) -> dict[str, float]:
        """``{proxy: score}`` for one architecture (NaN where a proxy failed numerically)."""
        a = self.space.parse(arch)
        if a in self._cache:
            return dict(self._cache[a])
        out = score_network(self.build(a), self.x, self.y, self.proxies, seed=self.seed)
        self._cache[a] = out
        return dict(out)

    def __call__(self, arch: Any) -> dict[str, float]:
        return self.score(arch)
