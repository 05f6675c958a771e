"""Collapse guard: watch a differentiable search for the skip-connect / curvature collapse and
optionally stop it early (RobustDARTS, Zela et al. 2020; DARTS+, Liang et al. 2019).

Measured after every epoch and logged under ``guard`` in the epoch event:

* ``param_free_share``: share of parameter-free ops (:data:`dnas.ops.PARAMETER_FREE`: none,
  pooling, skip) among the ops of the derived genotype, normal and reduction cells together;
* ``skip_normal``: skip-connects in the derived normal cell;
* ``hessian_eig``: dominant eigenvalue of the Hessian of the validation loss w.r.t. all
  architecture parameters, by ``guard_hessian_iters`` power iterations of Hessian-vector
  products (double backprop) on the first ``guard_hessian_batch`` (32) images of the epoch's
  first validation batch. It is the curvature
  of the relaxation's *expected* objective: softmax op mixing and expected edge weights
  (:meth:`~dnas.relax.base.Relaxation.expected_scope`), which for DARTS / PC-DARTS is their
  own loss and for the sampling relaxations (GDAS, MSG-DAS, TopoNAS) is the loss of the
  distribution they sample from, free of their temperature schedule (a straight-through
  surrogate's curvature grows as 1/tau^2 while tau anneals). Computed in train mode under a
  forked torch RNG, with BatchNorm statistics restored, so turning the guard on or off does
  not change the search itself.
* ``rank_sig``: a fingerprint of the ranking of the learnable (parameterised) ops on each edge.

Stop rule (``guard: stop``; ``guard: log`` only records which rule *would* fire, as ``alarm``).
Only epochs with architecture updates (``>= warmup_epochs``) count. At epoch ``i``:

1. **Curvature** (RobustDARTS / DARTS-ES): with ``ev(j)`` the mean eigenvalue over the
   ``guard_eig_window`` epochs ending at ``j``, stop when ``ev(i) / ev(i - guard_eig_lag) >
   guard_eig_ratio`` (1.3, i.e. the paper's 0.75 the other way round) and ``ev(i - lag) > 0``;
   the result is the genotype of epoch ``i - guard_eig_lag``, before the curvature grew.
2. **Skip-connects** (DARTS+ criterion 1): stop when the derived normal cell has
   ``guard_max_skip`` (2) or more skip-connects; the result is the genotype of epoch ``i``.
3. **Stable ranking** (DARTS+ criterion 2): stop when the ranking of learnable ops on every
   edge has not changed for ``guard_rank_patience`` (10) epochs; the result is epoch ``i``.

When a rule fires the loop ends after that epoch's checkpoint, a ``guard_stop`` event records
the rule, the reason and the chosen epoch, and ``genotype.json`` holds the chosen epoch's
genotype. A resumed run reads the decision back from its event log and does not continue.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from dnas.genotype import Genotype
from dnas.ops import PARAMETER_FREE
from dnas.relax.fused import plain_path

# ---------------------------------------------------------------------------- measurements


def _ops(genotype) -> list[str]:
    """The op names of a cell genotype (DARTS: both cells) or of any space's architecture
    that lists its ops (NB201: ``ops``)."""
    if hasattr(genotype, "normal"):
        return [op for op, _ in list(genotype.normal) + list(genotype.reduce)]
    return list(getattr(genotype, "ops", ()))


def param_free_share(genotype: Genotype) -> float:
    """Share of parameter-free ops among all ops of the genotype's cells."""
    ops = _ops(genotype)
    return sum(op in PARAMETER_FREE for op in ops) / max(len(ops), 1)


def skip_count(genotype: Genotype) -> int:
    """Skip-connects in the normal cell (in the one cell of single-cell spaces)."""
    ops = [op for op, _ in genotype.normal] if hasattr(genotype, "normal") else _ops(genotype)
    return sum(op == "skip_connect" for op in ops)


def _val_loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    relax = getattr(model, "relax", None)
    with relax.expected_scope() if relax is not None else contextlib.nullcontext():
        return F.cross_entropy(model(x), y)


def hessian_eigenvalue(model, x: torch.Tensor, y: torch.Tensor, iters: int = 5, seed: int = 0) -> float:
    """Dominant eigenvalue of d2 L_val / d arch2 by power iteration with Hessian-vector products.

    Side-effect free: runs under a forked torch RNG (seeded with ``seed``), restores BatchNorm
    buffers and the train/eval mode, and leaves no ``.grad`` behind."""
    arch = list(model.arch_parameters())
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    was_training = model.training
    devices = [torch.cuda.current_device()] if x.is_cuda else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            model.train()
            with plain_path(model):  # the fast path has no second derivative
                loss = _val_loss(model, x, y)
            grads = torch.autograd.grad(loss, arch, create_graph=True, allow_unused=True)
            pairs = [(g, a) for g, a in zip(grads, arch) if g is not None and g.requires_grad]
            if not pairs:
                return 0.0
            gs, ps = [g for g, _ in pairs], [a for _, a in pairs]
            gen = torch.Generator().manual_seed(seed)
            v = [torch.randn(p.shape, generator=gen).to(p) for p in ps]
            norm = torch.sqrt(sum((t * t).sum() for t in v))
            v = [t / norm for t in v]
            eig = 0.0
            for i in range(iters):
                hv = torch.autograd.grad(gs, ps, grad_outputs=v, retain_graph=i < iters - 1, allow_unused=True)
                hv = [torch.zeros_like(p) if h is None else h.detach() for h, p in zip(hv, ps)]
                eig = float(sum((h * t).sum() for h, t in zip(hv, v)))
                norm = float(torch.sqrt(sum((h * h).sum() for h in hv)))
                if not norm > 0:
                    break
                v = [h / norm for h in hv]
            return eig
    finally:
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        model.train(was_training)


def ranking_signature(model) -> str:
    """Fingerprint of the per-edge ranking of the learnable ops in every 2-D architecture
    parameter (op logits); equal fingerprints mean an unchanged ranking."""
    primitives = list(getattr(getattr(model, "space", None), "primitives", []) or [])
    h = hashlib.sha1()
    with torch.no_grad():
        for p in model.arch_parameters():
            if p.dim() != 2:
                continue
            cols = [i for i, name in enumerate(primitives) if name not in PARAMETER_FREE] if len(primitives) == p.shape[1] else []
            w = p[:, cols] if cols else p
            h.update(w.argsort(-1, descending=True).cpu().numpy().astype("int16").tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------- rules


def eigen_rule(eigs: Sequence[float | None], epochs: Sequence[int], *, ratio: float, lag: int, window: int, first: int) -> dict | None:
    """RobustDARTS rule on the last entry; ``eigs[j]`` belongs to epoch ``epochs[j]``."""
    by_epoch = dict(zip(epochs, eigs))
    i = epochs[-1] if epochs else None
    if i is None:
        return None

    def smoothed(j: int) -> float | None:
        vals = [by_epoch.get(e) for e in range(j - window + 1, j + 1)]
        if j - window + 1 < first or any(v is None for v in vals):
            return None
        return sum(vals) / window

    now, before = smoothed(i), smoothed(i - lag)
    if now is None or before is None or before <= 0 or now / before <= ratio:
        return None
    return {"rule": "eigenvalue", "at_epoch": i, "chosen_epoch": i - lag,
            "reason": f"Hessian eigenvalue grew {now / before:.2f}x (> {ratio}) from epoch {i - lag} to {i} (mean over {window} epochs)"}


def skip_rule(skips: int, epoch: int, *, max_skip: int, first: int) -> dict | None:
    """DARTS+ criterion 1 on the current epoch."""
    if epoch < first or skips < max_skip:
        return None
    return {"rule": "skip_connect", "at_epoch": epoch, "chosen_epoch": epoch, "reason": f"normal cell has {skips} skip-connects (>= {max_skip}) at epoch {epoch}"}


def rank_rule(sigs: Sequence[str], epochs: Sequence[int], *, patience: int, first: int) -> dict | None:
    """DARTS+ criterion 2: the ranking is unchanged over the last ``patience`` epochs."""
    pairs = [(e, s) for e, s in zip(epochs, sigs) if e >= first]
    if len(pairs) < patience + 1:
        return None
    last = pairs[-(patience + 1):]
    if any(s != last[-1][1] for _, s in last) or last[-1][0] - last[0][0] != patience:
        return None
    i = last[-1][0]
    return {"rule": "stable_ranking", "at_epoch": i, "chosen_epoch": i, "reason": f"ranking of learnable ops unchanged for {patience} epochs ({i - patience}..{i})"}


# ---------------------------------------------------------------------------- the guard


class CollapseGuard:
    """Per-epoch measurements and the stop decision, configured by the ``guard*`` fields."""

    def __init__(self, cfg) -> None:
        self.mode: str = getattr(cfg, "guard", "off")
        self.iters = int(getattr(cfg, "guard_hessian_iters", 5))
        self.batch = int(getattr(cfg, "guard_hessian_batch", 32))
        self.ratio = float(getattr(cfg, "guard_eig_ratio", 1.3))
        self.lag = int(getattr(cfg, "guard_eig_lag", 4))
        self.window = int(getattr(cfg, "guard_eig_window", 3))
        self.max_skip = int(getattr(cfg, "guard_max_skip", 2))
        self.patience = int(getattr(cfg, "guard_rank_patience", 10))
        self.first = int(getattr(cfg, "warmup_epochs", 0))
        self.seed = int(getattr(cfg, "seed", 0))

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def stops(self) -> bool:
        return self.mode == "stop"

    def measure(self, model, genotype: Genotype, val_batch: tuple[torch.Tensor, torch.Tensor] | None, epoch: int) -> dict[str, Any]:
        eig = None
        if self.iters > 0 and val_batch is not None:
            x, y = val_batch
            eig = hessian_eigenvalue(model, x[: self.batch], y[: self.batch], iters=self.iters, seed=self.seed * 1000 + epoch)
        return {
            "param_free_share": round(param_free_share(genotype), 4),
            "skip_normal": skip_count(genotype),
            "hessian_eig": eig,
            "rank_sig": ranking_signature(model),
        }

    def decide(self, history: Sequence[dict]) -> dict | None:
        """The rule that fires at the last epoch of ``history`` (epoch records with ``guard``)."""
        recs = [h for h in history if isinstance(h.get("guard"), dict)]
        if not recs:
            return None
        epochs = [int(h["epoch"]) for h in recs]
        g = [h["guard"] for h in recs]
        return (
            eigen_rule([x.get("hessian_eig") for x in g], epochs, ratio=self.ratio, lag=self.lag, window=self.window, first=self.first)
            or skip_rule(int(g[-1].get("skip_normal", 0)), epochs[-1], max_skip=self.max_skip, first=self.first)
            or rank_rule([x.get("rank_sig", "") for x in g], epochs, patience=self.patience, first=self.first)
        )

    def record(self, model, genotype: Genotype, val_batch, epoch: int, history: Sequence[dict]) -> dict | None:
        """The ``guard`` entry of this epoch's event (None when off); ``alarm`` is the rule
        that fired, if any (acted on only in ``stop`` mode)."""
        if not self.enabled:
            return None
        t0 = time.perf_counter()
        rec = self.measure(model, genotype, val_batch, epoch)
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        rec["alarm"] = self.decide([*history, {"epoch": epoch, "guard": rec}])
        return rec

    def stop_decision(self, history: Sequence[dict]) -> dict | None:
        """The decision to stop, read back from the last logged epoch (so resume agrees)."""
        if not self.stops or not history:
            return None
        g = history[-1].get("guard")
        return g.get("alarm") if isinstance(g, dict) else None

    @staticmethod
    def chosen_genotype(history: Sequence[dict], decision: dict) -> Genotype:
        for h in history:
            if int(h["epoch"]) == int(decision["chosen_epoch"]):
                return Genotype.from_dict(h["genotype"])
        raise KeyError(f"guard: no epoch record {decision['chosen_epoch']} in the event log")
