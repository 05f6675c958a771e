"""The ``ws:`` evaluator: score architectures with the shared weights of one trained supernet.

This is the *random sampling with weight sharing* baseline (Li & Talwalkar 2019; the
single-path one-shot recipe of Guo et al. 2020): train the space's supernet once, each step on
one architecture drawn uniformly from the space (``space.sample``) and pinned into the supernet
(``space.fix_arch``: its architecture logits put weight exactly 1 on the sampled path), then
score any architecture by pinning it and measuring the supernet's accuracy on the held-out
*val* split. Any discrete strategy searches with it: ``--strategy random --evaluator ws:2``
is the baseline itself, evolution or local search on the same supernet are its model-based
counterparts.

``ws:EPOCHS[,data=NAME,max_samples=N,batch_size=B,lr=LR,image_size=S,seed=K,threads=T,
relaxation=R,init_channels=C,layers=L]``: the supernet (``space.supernet`` under
``space.supernet_config()``, proxy sizes ``init_channels=8``, ``layers=5`` unless the space
fixes them) is trained for ``EPOCHS`` epochs on the train split when first needed. The
relaxation defaults to ``gdas`` where the space supports it: with pinned logits its Gumbel
sample is always the pinned op and only that op runs, so each step costs one path.

Scoring runs the pinned supernet in eval mode, with the BatchNorm running statistics gathered
over all sampled paths, as the reference code of Li & Talwalkar does (``model.eval()`` after
setting the architecture). We also tried the statistics of each val batch instead: on 12 NB201
cells its Kendall tau against short training was -0.19, against +0.17 for the running
statistics, so we kept the reference's choice. A score does not depend on what was scored
before (eval mode changes no state). The strategy's ``budget`` is echoed back (the supernet
has one fidelity).

``ws:run=DIR`` instead loads the supernet of a finished (or checkpointed) bilevel search run
(its ``config.yaml`` and ``checkpoint.pt``) and scores on that run's own data and val split,
so the supernet of a DARTS / GDAS / ... search ranks sampled architectures without retraining;
the searched space's options must match the run's (sampled architectures must fit its supernet).
"""
from __future__ import annotations

import random
import time
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.errors import ConfigError
from dnas.evaluators.base import EVALUATORS, EvalResult, parse_options
from dnas.evaluators.training import accuracy, load_splits, logits_of, torch_threads

WS_OPTIONS: dict[str, type] = {"epochs": int, "data": str, "max_samples": int, "batch_size": int, "lr": float,
                               "image_size": int, "seed": int, "threads": int, "relaxation": str,
                               "init_channels": int, "layers": int, "run": str}


class WeightSharingEvaluator:
    """Scores architectures of ``space`` with one uniformly trained supernet (module docstring)."""

    def __init__(self, space: Any, *, epochs: int = 1, data: str = "digits", max_samples: int | None = None,
                 batch_size: int = 32, lr: float = 0.05, image_size: int | None = None, seed: int = 0,
                 threads: int | None = 1, relaxation: str | None = None, init_channels: int = 8, layers: int = 5,
                 run: str | None = None, device: str = "cpu") -> None:
        self.run = run
        if run is not None:
            cfg = self._run_config(space, run)
            data, seed, max_samples, image_size, relaxation = cfg.data, cfg.seed, cfg.max_samples, cfg.image_size, cfg.relaxation
        if not space.relaxations:
            raise ConfigError(f"evaluator ws: space {space.name} has no weight-sharing supernet; "
                              "use train: (short training) or tabular:")
        if epochs < 1 or batch_size < 1 or lr <= 0:
            raise ConfigError("evaluator ws: needs epochs >= 1, batch_size >= 1 and lr > 0")
        relaxation = relaxation or ("gdas" if "gdas" in space.relaxations else space.relaxations[0])
        space.check_relaxation(relaxation)
        self.arch_space, self.epochs, self.batch_size, self.lr = space, int(epochs), int(batch_size), float(lr)
        self.seed, self.threads, self.device, self.relaxation = int(seed), threads, device, relaxation
        train, val, self.in_channels, self.num_classes = load_splits(data, seed=seed, max_samples=max_samples,
                                                                     image_size=image_size)
        self.train = (train[0].to(device), train[1].to(device))
        self.val = (val[0].to(device), val[1].to(device))
        from dnas.config import SearchConfig

        if run is not None:
            self.config = cfg
        else:
            fields = {"init_channels": init_channels, "layers": layers, **space.supernet_config(), "relaxation": relaxation,
                      "data": data, "seed": seed}
            try:
                self.config = SearchConfig(**fields)
            except ValueError as e:  # pydantic: one line naming the field
                raise ConfigError(f"evaluator ws: {str(e).splitlines()[-1].strip()}") from None
        self.supernet: nn.Module | None = None
        self.train_seconds = 0.0
        self._cache: dict[str, EvalResult] = {}

    # ------------------------------------------------------------------ training
    def fit(self) -> nn.Module:
        """Train the supernet on uniformly sampled single paths (once; later calls return it)."""
        if self.supernet is not None:
            return self.supernet
        if self.run is not None:
            return self._load_run()
        from dnas.data import Batches

        start = time.perf_counter()
        with torch_threads(self.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = self.arch_space.supernet(self.config, self.num_classes, self.in_channels).to(self.device)
            for p in net.arch_parameters():
                p.requires_grad_(False)
            rng = random.Random(self.seed)
            batches = Batches(*self.train, self.batch_size, shuffle=True, seed=self.seed)
            opt = torch.optim.SGD(net.weights(), lr=self.lr, momentum=0.9, weight_decay=3e-4)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.epochs * len(batches)))
            net.train()
            for epoch in range(self.epochs):
                batches.set_epoch(epoch)
                for xb, yb in batches:
                    self.arch_space.fix_arch(net, self.arch_space.sample(rng))
                    loss = F.cross_entropy(logits_of(net(xb)), yb)
                    if not torch.isfinite(loss):
                        continue  # skip a diverging path; the next one is another architecture
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(net.weights(), 5.0)
                    opt.step()
                    sched.step()
        self.supernet = net
        self.train_seconds = time.perf_counter() - start
        return net

    @staticmethod
    def _run_config(space: Any, run: str):
        from pathlib import Path

        from dnas.config import load_config

        path = Path(run) / "config.yaml"
        if not path.is_file():
            raise ConfigError(f"evaluator ws: run={run}: no config.yaml there; give a bilevel search run directory")
        cfg = load_config(path)
        if cfg.space != space.name:
            raise ConfigError(f"evaluator ws: run={run} searched space {cfg.space!r}, not {space.name!r}; use --space {cfg.space}")
        return cfg

    def _load_run(self) -> nn.Module:
        from dnas.run import RunDir

        ckpt = RunDir(self.run).load_checkpoint()
        if ckpt is None or "model" not in ckpt:
            raise ConfigError(f"evaluator ws: run={self.run}: no checkpoint.pt with supernet weights yet")
        with torch.random.fork_rng(devices=[]):
            net = self.arch_space.supernet(self.config, self.num_classes, self.in_channels).to(self.device)
        net.load_state_dict(ckpt["model"])
        self.supernet = net
        return net

    # ------------------------------------------------------------------ scoring
    def evaluate(self, arch: Any, budget: float | None = None) -> EvalResult:
        key = self.arch_space.hash(arch)
        if key in self._cache:
            r = self._cache[key]
            return EvalResult(r.accuracy, dict(r.cost), budget, cached=True)
        net = self.fit()
        start = time.perf_counter()
        with torch_threads(self.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.arch_space.fix_arch(net, arch)
            net.eval()  # running BatchNorm statistics, as the reference (see the module docstring)
            acc = accuracy(net, *self.val)
        r = EvalResult(accuracy=acc, cost={"seconds": time.perf_counter() - start}, budget=budget)
        self._cache[key] = r
        return r


@EVALUATORS.register("ws")
def _make_ws(arg: str, space: Any) -> WeightSharingEvaluator:
    return WeightSharingEvaluator(space, **parse_options("ws", arg, WS_OPTIONS, "epochs"))


_make_ws.options = WS_OPTIONS  # type: ignore[attr-defined]  (read by complete_spec)
