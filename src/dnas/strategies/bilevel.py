"""Bilevel gradient search (DARTS / PC-DARTS): weights on the train split, architecture on the
val split, alternating one architecture step and one weight step per batch.

Every epoch walks the whole train split (as the references do); each architecture step takes
the next val batch, and the val split is walked again in a new seeded order when it runs out
(:class:`dnas.searchdata.CycledVal`), so ``train_portion`` changes the data, not the step count.

First order treats the weights as constant during the architecture step. Second order
(``unrolled``) follows the DARTS paper: the validation loss is taken at the weights after one
virtual SGD step (with the optimizer's momentum, Nesterov correction and weight decay), and the
implicit term is a Hessian-vector product, by central finite differences with
``R = 0.01 / ||v||`` as in the reference (``hvp: finite-difference``) or exactly by double
backward through the train loss (``hvp: exact``). The virtual step, the Hessian and the
validation objective use the relaxation's own losses (:meth:`Relaxation.weight_loss`,
:meth:`Relaxation.arch_loss`), so MSG-DAS unrolls the mean over its K sub-graphs.

Which step comes first on a batch is the relaxation's :attr:`Relaxation.step_order` (GDAS:
weights, then architecture). Temperature and drop schedules (:meth:`Relaxation.on_epoch`) run
over the architecture-search epochs, counted from the end of the warm-up.

The loop checkpoints after every epoch (model, both optimizers, scheduler, RNG, relaxation
schedule) and the data order is a function of (seed, epoch), so a run killed at any point and
resumed ends with the same genotype as an uninterrupted one.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from dnas.config import SearchConfig, dump_config
from dnas.decision import decision
from dnas.errors import ConfigError, DivergenceError, DnasError
from dnas.finite import check_finite_model
from dnas.genotype import Genotype
from dnas.progress import progress as progress_display
from dnas.guard import CollapseGuard
from dnas.relax.fused import set_fast_path
from dnas.relax import relaxation_from_config
from dnas.selection import run_selection, selection_name
from dnas.run import RunDir, resolve_device, rng_state, seed_everything, set_rng_state
from dnas.strategies.terms import arch_steps, arch_terms
from dnas.tb import open_tensorboard


@dataclass
class SearchResult:
    genotype: Genotype
    run_dir: Path
    history: list[dict] = field(default_factory=list)
    #: SHA-256 of the final architecture parameters' bytes (equal on every rank of a distributed run).
    arch_digest: str | None = None
    #: The final architecture parameters by name (CPU tensors).
    arch: dict | None = None
    #: Per-rank outcomes of a ``nproc > 1`` run (genotype, arch, digest), from the launcher.
    ranks: list | None = None
    #: True when ``--resume`` found the run already finished and changed nothing.
    already_finished: bool = False
    #: How sure the search is (:func:`dnas.decision.decision`): margins, mean top-1, ``decided``.
    decision: dict | None = None


def _check_finite(loss: torch.Tensor, where: str, epoch: int, step: int) -> None:
    if not torch.isfinite(loss):
        raise DivergenceError(
            f"{where} loss became {loss.item()} at epoch {epoch}, step {step}; lower lr / arch_lr (config fields, via --config) or lower grad_clip"
        )


class Architect:
    """Architecture optimizer: Adam on alpha/beta, first- or second-order gradients."""

    #: Finite-difference radius numerator: R = fd_radius / ||v|| (0.01 in the DARTS code).
    fd_radius = 0.01

    def __init__(self, model, cfg: SearchConfig) -> None:
        self.model = model
        order = tuple(getattr(model.relax, "step_order", ("arch", "weights")))
        if sorted(order) != ["arch", "weights"]:
            raise DnasError(f"relaxation {model.relax.name}: step_order must name 'arch' and 'weights' once each, got {order}; fix the relaxation class")
        self.terms = arch_terms(cfg, model)
        # The relaxation's own regulariser (FairDARTS zero-one, beta-DARTS, DrNAS KL) joins
        # the registered terms; it returns None when the method has none.
        self.terms[f"relax/{model.relax.name}"] = model.relax.arch_term
        self.extra_steps = arch_steps(cfg, model)
        self.last_terms: dict[str, float] = {}
        #: Data-parallel gradient reduction (:class:`dnas.distributed.GradSync`); None for one process.
        self.sync = None
        self.unrolled = cfg.unrolled
        self.hvp = cfg.hvp
        self.momentum = cfg.momentum
        self.nesterov = cfg.nesterov
        self.weight_decay = cfg.weight_decay
        self.optimizer = torch.optim.Adam(
            model.arch_parameters(), lr=cfg.arch_lr, betas=tuple(cfg.arch_betas), weight_decay=cfg.arch_weight_decay
        )

    def step(self, xt, yt, xv, yv, eta: float, w_optimizer: torch.optim.Optimizer) -> torch.Tensor:
        arch = self.model.arch_parameters()
        if self.unrolled:
            with self.model.relax.sample_scope():  # one architecture sample for the whole unrolled step
                grads, loss = self._unrolled_grads(xt, yt, xv, yv, eta, w_optimizer)
        else:
            loss = self.model.relax.arch_loss(self.model, xv, yv)
            grads = torch.autograd.grad(loss, arch)  # weight gradients are never computed
            if self.sync is not None:  # global-batch gradient (the unrolled path reduces inside)
                grads = self.sync.val(grads)
        grads = list(grads)
        if self.terms:
            # Extra objective terms (cost, regularisers) depend on the architecture parameters
            # only, so their gradient simply adds to the validation-loss gradient.
            extra, self.last_terms = None, {}
            for name, term in self.terms.items():
                value = term(self.model)
                if value is not None:
                    self.last_terms[name] = float(value.detach())
                    extra = value if extra is None else extra + value
            if extra is not None:
                tg = torch.autograd.grad(extra, arch, allow_unused=True)
                grads = [g if t is None else g + t for g, t in zip(grads, tg)]
        for p, g in zip(arch, grads):
            p.grad = g
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.relax.after_arch_step(self.model)
        self._extra_steps(arch)
        return loss.detach()

    def _extra_steps(self, arch) -> None:
        """Auxiliary architecture objectives that take their own optimizer step after the
        validation step (H-DAS depth loss), instead of being added to it. Parameters the
        objective does not touch get no gradient, so Adam leaves them (and their moments) alone."""
        for name, extra_step in self.extra_steps.items():
            out = extra_step(self.model)
            if out is None:
                continue
            loss, logs = out
            grads = torch.autograd.grad(loss, arch, allow_unused=True)
            for p, g in zip(arch, grads):
                p.grad = g
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.last_terms.update({f"{name}/{k}": float(v) for k, v in logs.items()})

    def _unrolled_grads(self, xt, yt, xv, yv, eta, w_optimizer):
        """Gradient of ``L_val(w', alpha)`` w.r.t. alpha with ``w' = w - eta * step(dL_train/dw)``
        (the optimizer's virtual step): ``dL_val/dalpha - c * eta * H v`` with
        ``v = dL_val/dw'``, ``H = d2L_train/(dalpha dw)`` and ``c = 1 + momentum`` under
        Nesterov (its step holds the gradient twice), else 1. Returns (grads, val loss)."""
        model, relax = self.model, self.model.relax
        names, weights = zip(*model.named_weights())
        arch = model.arch_parameters()
        exact = self.hvp == "exact"
        train_loss, _ = relax.weight_loss(model, xt, yt)
        # single-path relaxations leave unsampled ops out of the graph: their gradient is None
        gw = torch.autograd.grad(train_loss, weights, allow_unused=True, create_graph=exact)
        used = [g is not None for g in gw]
        gw_graph = gw
        gw = [torch.zeros_like(w) if g is None else g.detach() for w, g in zip(weights, gw)]
        if self.sync is not None:
            gw = self.sync.train(gw)
        with torch.no_grad():
            unrolled = [self._virtual_step(w, g, eta, w_optimizer).requires_grad_() for w, g in zip(weights, gw)]
        params = dict(zip(names, unrolled))
        arch_names = {id(p): n for n, p in model.named_parameters()}
        params.update({arch_names[id(a)]: a for a in arch})
        val_loss = relax.arch_loss(_WithParams(model, params), xv, yv)
        g = torch.autograd.grad(val_loss, list(arch) + unrolled, allow_unused=True)
        dalpha = [x if x is not None else torch.zeros_like(a) for x, a in zip(g[: len(arch)], arch)]
        vector = [x if x is not None else torch.zeros_like(u) for x, u in zip(g[len(arch) :], unrolled)]
        if self.sync is not None:
            g = self.sync.val(dalpha + vector)
            dalpha, vector = g[: len(arch)], g[len(arch) :]
        if exact:
            hv = self._exact_hvp(gw_graph, used, vector, arch)
        else:
            hv = self._finite_difference_hvp(xt, yt, weights, vector, arch)
        if self.sync is not None:
            hv = self.sync.train(hv)
        scale = eta * ((1.0 + self.momentum) if self.nesterov else 1.0)
        grads = [da - scale * h for da, h in zip(dalpha, hv)]
        return grads, val_loss

    def _virtual_step(self, w, g, eta, w_optimizer):
        """``w`` after one SGD step on gradient ``g`` with the optimizer's momentum buffer,
        weight decay and (Nesterov) look-ahead, as ``torch.optim.SGD`` would take it."""
        d = g + self.weight_decay * w
        buf = w_optimizer.state.get(w, {}).get("momentum_buffer")
        if self.momentum:
            buf = d if buf is None else buf * self.momentum + d
            d = d + self.momentum * buf if self.nesterov else buf
        return w - eta * d

    @staticmethod
    def _exact_hvp(gw, used, vector, arch):
        """``d/dalpha <dL_train/dw, v>`` by a second backward through the train-loss gradient
        (``gw`` was taken with ``create_graph``); exact up to rounding, one extra backward."""
        dot = sum((g * v).sum() for g, v, u in zip(gw, vector, used) if u)
        if not torch.is_tensor(dot) or not dot.requires_grad:  # no weight gradient depends on alpha
            return [torch.zeros_like(a) for a in arch]
        hv = torch.autograd.grad(dot, arch, allow_unused=True)
        return [torch.zeros_like(a) if h is None else h for h, a in zip(hv, arch)]

    def _finite_difference_hvp(self, xt, yt, weights, vector, arch):
        """``(dL_train/dalpha at w + R v  -  at w - R v) / 2R`` with ``R = fd_radius / ||v||``
        (the DARTS reference); two extra train forwards and backwards."""
        relax = self.model.relax
        R = (self.fd_radius / torch.cat([v.flatten() for v in vector]).norm().clamp_min(1e-12)).item()
        grads = []
        for sign in (1.0, -2.0):
            with torch.no_grad():
                for w, v in zip(weights, vector):
                    w.add_(v, alpha=sign * R)
            loss, _ = relax.weight_loss(self.model, xt, yt)
            grads.append(torch.autograd.grad(loss, arch, allow_unused=True))
        with torch.no_grad():
            for w, v in zip(weights, vector):
                w.add_(v, alpha=R)
        zero = [torch.zeros_like(a) for a in arch]
        return [((z if p is None else p) - (z if n is None else n)) / (2 * R) for p, n, z in zip(*grads, zero)]


class _WithParams:
    """The supernet run with substituted parameters (the unrolled weights) and a copy of its
    buffers, callable like the module, so a relaxation's :meth:`arch_loss` can be evaluated at
    the virtual step (each forward it makes, e.g. one per MSG-DAS sub-graph, sees those weights)."""

    def __init__(self, model: torch.nn.Module, params: dict) -> None:
        self.model, self.params = model, params
        self.buffers = {n: b.clone() for n, b in model.named_buffers()}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, (self.params, self.buffers), (x,))

    def __getattr__(self, item: str):
        return getattr(self.__dict__["model"], item)


def _then_channels_last(transform):
    def apply(x, g):
        return (transform(x, g) if transform is not None else x).contiguous(memory_format=torch.channels_last)

    return apply


def _first_batch(batches, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The epoch's first batch (the collapse guard's Hessian batch); Batches are seeded by
    (seed, epoch), so this draws no random numbers."""
    x, y = next(iter(batches))
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _evaluate(model: torch.nn.Module, batches, device, dist=None) -> tuple[float, float]:
    """Loss and accuracy over ``batches`` (this rank's shards; summed over the ranks)."""
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    with torch.no_grad():
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x)
            loss_sum += F.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(1) == y).sum().item()
            total += y.numel()
    model.train()
    if dist is not None:
        loss_sum, correct, total = dist.sum_floats([loss_sum, correct, total])
    return loss_sum / max(total, 1), correct / max(total, 1)


def build_supernet(cfg: SearchConfig, num_classes: int, in_channels: int):
    """The supernet of ``cfg.space`` under ``cfg.relaxation`` (see :func:`dnas.spaces.build_supernet`)."""
    from dnas.spaces.base import build_supernet as build

    model = build(cfg, num_classes, in_channels)
    set_fast_path(model, getattr(cfg, "fast", True))  # dnas.relax.fused; same values, less time and memory
    return model


def run_bilevel_search(cfg: SearchConfig, run: RunDir, *, resume: bool = False, progress: bool = True) -> SearchResult:
    """Run (or resume) a bilevel cell search in ``run``; returns the derived genotype.

    With ``cfg.nproc > 1`` (and not already inside a launcher) the search runs data-parallel on
    that many local ranks; under torchrun each process is one rank (see :mod:`dnas.distributed`)."""
    from dnas import distributed
    from dnas.searchdata import CycledVal, search_batches, write_search_splits

    if cfg.nproc > 1 and not distributed.launched():
        return launch_search(cfg, run, resume=resume, progress=progress)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    dist = distributed.setup(device)  # single-process no-op outside a launcher
    device = dist.device(device)
    progress = progress and dist.is_main
    if dist.enabled and dist.broadcast_object(str(run.path.resolve())) != str(run.path.resolve()):
        raise DnasError(f"rank {dist.rank}: run directory {run.path} differs from rank 0's; pass the same --out to every rank")
    seed_everything(cfg.seed)
    train_b, val_b, num_classes, in_channels = search_batches(cfg, rank=dist.rank, world_size=dist.world_size)
    cycled_val = CycledVal(val_b)
    model = build_supernet(cfg, num_classes, in_channels).to(device)
    if cfg.channels_last:
        from dnas.ops import channels_last_safe

        if not channels_last_safe(model):
            raise ConfigError(
                "channels_last: this supernet has a stride-2 1x1 conv with fewer than 8 input channels, which oneDNN "
                "corrupts in channels_last on CPU; drop channels_last or raise init_channels (x partial_k for pc)"
            )
        model = model.to(memory_format=torch.channels_last)
        train_b.transform = _then_channels_last(train_b.transform)
        val_b.transform = _then_channels_last(val_b.transform)
    w_opt = torch.optim.SGD(model.weights(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, cfg.epochs, eta_min=cfg.lr_min)
    architect = Architect(model, cfg)
    guard = CollapseGuard(cfg)
    sync = distributed.GradSync(dist) if dist.enabled else None
    architect.sync = sync

    start_epoch = 0
    ckpt = run.load_checkpoint() if resume else None
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
            w_opt.load_state_dict(ckpt["w_opt"])
            architect.optimizer.load_state_dict(ckpt["a_opt"])
            sched.load_state_dict(ckpt["sched"])
            model.relax.load_state(ckpt.get("relax", {}))
            set_rng_state(ckpt["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
            raise DnasError(f"{run.checkpoint}: checkpoint does not fit the supernet of config.yaml ({type(e).__name__}); "
                            "it belongs to another config — start a new run") from None
        start_epoch = int(ckpt["epoch"]) + 1
        if dist.is_main:
            if not (run.path / "splits.json").exists():  # a run started before splits.json existed
                write_search_splits(cfg, run.path)
            run.truncate_events(start_epoch)
            run.log("resume", from_epoch=start_epoch)
    elif dist.is_main:
        if resume:  # no checkpoint: only a run that never reached its first one may restart
            if run.read_events("epoch"):
                raise DnasError(f"{run.checkpoint}: missing, but the run logged finished epochs; restore the "
                                "checkpoint or start a new run")
            run.clear_events()
        run.save_config_text(dump_config(cfg))
        write_search_splits(cfg, run.path)
        run.log("start", kind="search", config=cfg.model_dump(mode="json"), **({"world_size": dist.world_size} if dist.enabled else {}))
    dist.barrier()  # rank 0 has trimmed the event log before anyone reads it
    dist.broadcast_(list(model.parameters()) + list(model.buffers()))  # every rank starts from rank 0's state
    tb = open_tensorboard(run.path, purge_step=start_epoch) if dist.is_main else None

    history = [e for e in run.read_events("epoch")]
    stopped = guard.stop_decision(history)  # a resumed run that the guard had already stopped
    if stopped is not None and dist.is_main and not run.read_events("guard_stop"):
        run.log("guard_stop", **stopped)
    model.train()
    with progress_display(progress) as bar:
        epochs_task = bar.add("search", total=cfg.epochs)
        bar.advance(epochs_task, start_epoch)
        steps_task = bar.add("  epoch", total=len(train_b))
        for epoch in range(start_epoch, cfg.epochs):
            if stopped is not None:
                break
            t0 = time.time()
            # schedules (tau, drop rates) anneal over the architecture-search epochs only
            model.relax.on_epoch(max(epoch - cfg.warmup_epochs, 0), max(cfg.epochs - cfg.warmup_epochs, 1))
            train_b.set_epoch(epoch)
            val_stream = cycled_val.epoch(epoch)  # a val batch for every step of the whole train split
            lr = w_opt.param_groups[0]["lr"]
            search_arch = epoch >= cfg.warmup_epochs
            n, correct, loss_sum, arch_loss_sum, arch_steps = 0, 0, 0.0, 0.0, 0
            bar.reset(steps_task, total=len(train_b), description=f"  epoch {epoch + 1}/{cfg.epochs}")
            weights = model.weights()
            for step, (xt, yt) in enumerate(train_b):
                xt, yt = xt.to(device, non_blocking=True), yt.to(device, non_blocking=True)
                if search_arch:  # weight-only warm-up epochs draw no val batches
                    xv, yv = next(val_stream)
                val_share = 1.0
                if sync is not None:  # this rank's shares of the global train and val batches
                    val_share = val_b.share
                    sync.set_shares(train_b.share, val_share)
                for phase in model.relax.step_order:  # which step comes first is the relaxation's call
                    if phase == "arch" and search_arch and model.relax.needs_arch_step:
                        xv, yv = xv.to(device, non_blocking=True), yv.to(device, non_blocking=True)
                        a_loss = architect.step(xt, yt, xv, yv, lr, w_opt)
                        _check_finite(a_loss, "architecture", epoch, step)
                        arch_loss_sum += a_loss.item() * val_share
                        arch_steps += 1
                    elif phase == "weights":
                        with model.relax.weight_scope(model, xt, yt):  # SDARTS: perturbed architecture
                            loss, logits = model.relax.weight_loss(model, xt, yt)
                            _check_finite(loss, "training", epoch, step)
                            # Single-path relaxations (gdas, msg) leave the unsampled ops out of the graph: their
                            # gradient is None, so SGD skips them this step (no decay, no momentum), as with backward().
                            grads = torch.autograd.grad(loss, weights, allow_unused=True)
                        if sync is not None:
                            grads = sync.train(grads, like=weights)
                        for p, g in zip(weights, grads):
                            p.grad = g
                        torch.nn.utils.clip_grad_norm_(weights, cfg.grad_clip)
                        w_opt.step()
                        w_opt.zero_grad(set_to_none=True)
                b = yt.numel()
                n += b
                loss_sum += loss.item() * b
                correct += (logits.argmax(1) == yt).sum().item()
                bar.advance(steps_task, info=f"loss {loss_sum / n:.3f}")
            sched.step()
            drift = None
            if dist.enabled:
                n, correct, loss_sum, arch_loss_sum = dist.sum_floats([n, correct, loss_sum, arch_loss_sum])
                dist.average_buffers_(model)
                drift = dist.drift(list(model.parameters()))
            val_stream.close()
            val_b.set_epoch(epoch)  # evaluation and the guard batch: the epoch's own val order
            val_loss, val_acc = _evaluate(model, val_b, device, dist if dist.enabled else None)
            check_finite_model(model, f"search epoch {epoch + 1}", "lower lr / arch_lr (config fields) or grad_clip",
                               val_loss=val_loss, train_loss=loss_sum / max(n, 1))
            genotype = model.genotype()
            alphas = model.arch_summary()
            guard_rec = None
            if guard.enabled and dist.is_main:  # the guard batch is the full global batch
                guard_rec = guard.record(model, genotype, _first_batch(getattr(val_b, "base", val_b), device), epoch, history)
            guard_rec = dist.broadcast_object(guard_rec)  # one stop decision for all ranks
            record = {
                "epoch": epoch,
                "lr": lr,
                "train_loss": loss_sum / max(n, 1),
                "train_acc": correct / max(n, 1),
                "arch_loss": arch_loss_sum / arch_steps if arch_steps else None,
                "weight_steps": step + 1 if len(train_b) else 0,
                "arch_steps": arch_steps,
                "arch_terms": dict(architect.last_terms),
                "val_loss": val_loss,
                "val_acc": val_acc,
                "seconds": round(time.time() - t0, 3),
                "genotype": genotype.to_dict(with_meta=False),
                "alphas": alphas,
                "decision": decision(alphas, cfg.decided_margin),
                "relax": model.relax.state(),
            }
            if guard_rec is not None:
                record["guard"] = guard_rec
            if drift is not None:
                record["world_size"], record["rank_drift"] = dist.world_size, drift
                if drift != 0.0:
                    raise DnasError(f"epoch {epoch}: parameters differ across ranks by {drift:g}; this is a dnas bug, please report it")
            history.append(record)
            if not dist.is_main:
                bar.advance(epochs_task)
                stopped = guard.stop_decision(history)
                continue
            run.log("epoch", **record)
            if tb is not None:
                tb.write(epoch, record)
            run.save_checkpoint(
                {
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "w_opt": w_opt.state_dict(),
                    "a_opt": architect.optimizer.state_dict(),
                    "sched": sched.state_dict(),
                    "relax": model.relax.state(),
                    "rng": rng_state(),
                }
            )
            bar.advance(epochs_task, info=f"val acc {val_acc:.3f}")
            bar.log(f"epoch {epoch + 1}/{cfg.epochs}  train acc {record['train_acc']:.3f}  val acc {val_acc:.3f}  {record['seconds']:.0f}s")
            stopped = guard.stop_decision(history)
            if stopped is not None:
                run.log("guard_stop", **stopped)
                bar.log(f"collapse guard: {stopped['reason']}; keeping the genotype of epoch {stopped['chosen_epoch'] + 1}")

    if tb is not None:
        tb.close()
    selection = selection_name(cfg, model.relax)
    meta = dict(method=f"bilevel/{cfg.relaxation}" + ("/2nd-order" if cfg.unrolled else "") + ("" if selection == "argmax" else f"+{selection}"),
                seed=cfg.seed, data=cfg.data, run=str(run.path))
    if stopped is not None:  # the collapse guard ended the search: keep the genotype of the epoch its rule chose
        genotype = guard.chosen_genotype(history, stopped).with_meta(**meta, guard_stop=stopped)
    elif selection != "argmax":  # a selection phase over the trained supernet (SPOS search, DARTS-PT)
        genotype, sel_log = run_selection(selection, cfg, model, train_b, val_b, device)
        genotype = genotype.with_meta(**meta)
        if dist.is_main:
            run.log("selection", name=selection, **sel_log)
    else:
        genotype = model.genotype(**meta)
    arch_ids = {id(a) for a in model.arch_parameters()}
    arch = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if id(p) in arch_ids}
    digest = distributed.tensor_digest(arch.values())
    if not dist.is_main:
        dist.close()
        return SearchResult(genotype, run.path, history, arch_digest=digest, arch=arch)
    genotype.save(run.genotype)
    from dnas.evaluators.tabular import table_accuracy

    final = history[-1] if history else {}
    verdict = decision(model.arch_summary(), cfg.decided_margin)
    if stopped is not None:  # the kept genotype is an earlier epoch's: so is its verdict
        verdict = next((h["decision"] for h in history if h.get("epoch") == stopped.get("chosen_epoch") and "decision" in h), verdict)
    run.write_result(
        {
            "genotype": genotype.to_dict(),
            "genotype_hash": genotype.hash(),
            "val_acc": final.get("val_acc"),
            "epochs": cfg.epochs,
            "search_seconds": round(sum(h.get("seconds", 0.0) for h in history), 3),
            "guard_stop": stopped,
            **table_accuracy(cfg.space, genotype),
            "decided": verdict["decided"],
            "decision": verdict,
        }
    )
    if verdict["decided"] is False:
        run.log("undecided", **{k: v for k, v in verdict.items() if k != "edges"})
    run.log("end", genotype_hash=genotype.hash())
    dist.close()
    return SearchResult(genotype, run.path, history, arch_digest=digest, arch=arch, decision=verdict)


# ------------------------------------------------------------------------ data-parallel launch (dnas.distributed)


def search_rank(cfg_fields: dict, run_path: str, resume: bool, progress: bool) -> dict:
    """One rank of a search started by :func:`launch_search`: runs the bilevel loop and returns
    what the launcher compares across ranks (genotype, architecture parameters and their digest)."""
    from dnas.config import SearchConfig
    from dnas.run import RunDir

    cfg = SearchConfig(**cfg_fields)
    result = run_bilevel_search(cfg, RunDir(run_path), resume=resume, progress=progress and os.environ.get("RANK") == "0")
    return {
        "rank": int(os.environ["RANK"]),
        "genotype": result.genotype.to_dict(with_meta=False),
        "arch_digest": result.arch_digest,
        # numpy, not tensors: torch pickles tensors as shared-memory handles that die with this process
        "arch": {k: v.cpu().numpy() for k, v in (result.arch or {}).items()},
    }


def launch_search(cfg, run, *, resume: bool = False, progress: bool = True):
    """Run a search on ``cfg.nproc`` local ranks and return rank 0's
    :class:`~dnas.strategies.bilevel.SearchResult`; raises if the ranks disagree on the
    architecture (which the gradient all-reduce rules out; this is the check)."""
    from dnas.genotype import load_genotype

    from dnas.distributed import launch

    outs = launch(cfg.nproc, search_rank, (cfg.model_dump(mode="json"), str(run.path), resume, progress))
    digests = [o["arch_digest"] for o in outs]
    if len(set(digests)) != 1 or any(o["genotype"] != outs[0]["genotype"] for o in outs):
        raise DnasError(f"ranks ended with different architecture parameters (digests {digests}); this is a dnas bug, please report it")
    genotype = load_genotype(run.genotype)
    for o in outs:
        o["arch"] = {k: torch.from_numpy(v) for k, v in o["arch"].items()}
    return SearchResult(genotype, run.path, run.read_events("epoch"), arch_digest=digests[0], arch=outs[0]["arch"], ranks=outs)
