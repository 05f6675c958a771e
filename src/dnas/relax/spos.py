"""SPOS / RSPS: uniform single-path supernet training, then a search over the trained
supernet (Guo et al., ECCV 2020, "Single Path One-Shot Neural Architecture Search with Uniform
Sampling", code: github.com/megvii-model/SinglePathOneShot; Li & Talwalkar, UAI 2019, "Random
Search and Reproducibility for NAS", code: github.com/liamcli/randomNAS_release).

Training: every weight step draws one architecture uniformly from the *space*
(``space.sample``: for DARTS a valid cell, two distinct inputs per node, no ``none``; for NB201
one op per edge) and trains exactly that path: its one-hot supernet weights
(``space.supernet_weights``) reach the forward through
:meth:`~dnas.relax.base.Relaxation.fixed_weights`, and only the ops with weight 1 are computed.
There are no architecture parameters to learn (``needs_arch_step = False``: the loop skips the
architecture step). The draw's seed comes from the torch CPU generator, which the search
checkpoints, so resumed runs draw the same paths.

Search: the selection phase (:mod:`dnas.selection.oneshot`) scores architectures with the
trained supernet after recalibrating BatchNorm statistics on training batches: ``evolution``
(SPOS, the default) or ``random`` (RSPS: ``--selection random``).

The per-epoch ``val_acc`` of the event log is that of the eval-mode supernet, the uniform mixture
of every path (``softmax`` of the untouched alpha), not of any one architecture; the selection's
scores (the ``selection`` event) are the ones that rank architectures.

Where we differ: SPOS's own space (ShuffleNet choice blocks, channel search) is not built; the
method runs on whichever dnas space provides ``supernet_weights``. RSPS trains the DARTS
supernet with the same uniform single paths, so one relaxation serves both papers.
"""
from __future__ import annotations

import random
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.errors import ConfigError
from dnas.relax.base import RELAXATIONS, Relaxation
from dnas.relax.gdas import SinglePathMixedOp


def search_space_of(model: nn.Module):
    """The :class:`~dnas.spaces.base.SearchSpace` a supernet was built for (one line if none)."""
    space = getattr(model, "search_space", None)
    if space is None:
        raise ConfigError("space: this supernet cannot place single architectures (no search_space); single-path training "
                          "and supernet scoring run on --space darts or nb201")
    return space


def sample_arch(model: nn.Module):
    """One architecture drawn uniformly from the supernet's space, seeded by the torch generator."""
    seed = int(torch.randint(0, 2**62, (1,)).item())
    return search_space_of(model).sample(random.Random(seed))


@RELAXATIONS.register("spos")
class SinglePathRelaxation(Relaxation):
    name = "spos"
    needs_arch_step = False
    default_selection = "evolution"

    @classmethod
    def from_config(cls, cfg) -> "SinglePathRelaxation":
        return cls()

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return SinglePathMixedOp(C, stride, primitives)

    def weight_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        arch = sample_arch(model)
        self.last_arch = arch
        with self.fixed_weights(search_space_of(model).supernet_weights(arch, model)):
            logits = model(x)
        return F.cross_entropy(logits, y), logits
