"""The weight / architecture parameter split every supernet exposes (the bilevel search updates
the two groups with different optimizers on different data)."""
from __future__ import annotations

from typing import Iterator

import torch.nn as nn


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
