"""Extra terms of the architecture objective (cost penalties, regularisers).

A term factory registered in :data:`ARCH_TERMS` is called once per search as
``factory(cfg, model)`` and returns either ``None`` (term switched off by the config) or a
callable ``term(model) -> scalar tensor | None``; the bilevel search adds every term's value to
the validation loss of each architecture step and logs its value per epoch under
``arch_terms``. Terms must depend on the architecture parameters (not the weights): e.g. the
expected latency of the current op distribution times lambda.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from dnas.registry import Registry

Term = Callable[[torch.nn.Module], Optional[torch.Tensor]]
ARCH_TERMS: Registry[Callable[..., Optional[Term]]] = Registry("architecture term")


def arch_terms(cfg, model) -> dict[str, Term]:
    """Instantiate every registered term that the config switches on."""
    out: dict[str, Term] = {}
    for name in ARCH_TERMS.names():
        term = ARCH_TERMS.get(name)(cfg, model)
        if term is not None:
            out[name] = term
    return out


#: Extra architecture steps: ``factory(cfg, model) -> None | step(model) -> (loss, {name: value})``.
#: Each step's loss gets its own architecture-optimizer step after every architecture step
#: (unlike ``ARCH_TERMS``, which add to the validation loss); values are logged under ``arch_terms``.
ARCH_STEPS: Registry = Registry("architecture step")


def arch_steps(cfg, model) -> dict:
    """Instantiate every registered extra architecture step that the config switches on."""
    out = {}
    for name in ARCH_STEPS.names():
        step = ARCH_STEPS.get(name)(cfg, model)
        if step is not None:
            out[name] = step
    return out
