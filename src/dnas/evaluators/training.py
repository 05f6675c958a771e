"""The ``train:`` evaluator: score an architecture of any space by short real training.

``train:EPOCHS[,data=NAME,max_samples=N,batch_size=B,lr=LR,image_size=S,seed=K,threads=T]``
builds ``space.build(arch, **space.proxy_net)`` (small widths, few cells: the space's proxy
network), trains it for ``budget`` epochs (``EPOCHS`` when the strategy gives no budget; BOHB's
budgets are epochs, so BOHB is multi-fidelity for real) on the *train* split of the data and
returns the accuracy on the held-out *val* split; the test split is never seen by a search.

Why the per-architecture seed: the initial weights and the batch order come from
``hash(seed, space.hash(arch))``, so an architecture's score does not depend on when it was
evaluated or what was evaluated before it - the same seed and config give the same search, and a
resumed search (which replays its log) sees the same numbers. A repeated query at the same
budget is answered from memory (``cached=True``).

Training: SGD (momentum 0.9, weight decay 3e-4, the DARTS evaluation recipe) with a cosine
schedule over the run, gradient clipping 5, no augmentation; a loss that becomes non-finite
stops the run, which is scored as it stands (``cost["diverged"] = 1``), so one bad architecture
does not abort a search.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import time
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.errors import ConfigError
from dnas.evaluators.base import EVALUATORS, EvalResult, parse_options

#: Options of the ``train:`` spec and their types (the first, unnamed value is ``epochs``).
TRAIN_OPTIONS: dict[str, type] = {"epochs": int, "data": str, "max_samples": int, "batch_size": int, "lr": float,
                                  "image_size": int, "seed": int, "threads": int}


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block on ``n`` intra-op threads (tiny networks gain nothing from more, and
    several evaluations side by side oversubscribe the cores), restoring the setting after."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_splits(data: str, *, seed: int, max_samples: int | None, image_size: int | None):
    """``(train, val, in_channels, num_classes)`` of a dataset: the seeded split every search
    uses (the test split is dropped here, so an evaluator cannot score on it)."""
    from dnas.data import load_dataset, split_dataset
    from dnas.searchdata import subsample

    ds = subsample(load_dataset(data, image_size=image_size), max_samples, seed)
    splits = split_dataset(ds, seed=seed)
    return splits.train, splits.val, int(ds.x.shape[1]), int(ds.num_classes)


def logits_of(out: Any) -> torch.Tensor:
    """Networks return logits, or ``(logits, aux_logits)`` in train mode."""
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    """Top-1 accuracy in percent of ``model`` on ``(x, y)`` (in its current train/eval mode)."""
    correct = 0
    for i in range(0, len(y), batch):
        correct += int((logits_of(model(x[i : i + batch])).argmax(1) == y[i : i + batch]).sum())
    acc = 100.0 * correct / max(len(y), 1)
    return acc if math.isfinite(acc) else 0.0


def arch_seed(seed: int, key: str) -> int:
    """A 31-bit seed from the run seed and an architecture's hash."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "little") & 0x7FFFFFFF


class TrainEvaluator:
    """Short real training of ``space``'s proxy network (see the module docstring)."""

    def __init__(self, space: Any, *, epochs: int = 1, data: str = "digits", max_samples: int | None = None,
                 batch_size: int = 32, lr: float = 0.05, image_size: int | None = None, seed: int = 0,
                 threads: int | None = 1, device: str = "cpu") -> None:
        if epochs < 1 or batch_size < 1 or lr <= 0 or (max_samples is not None and max_samples < 10):
            raise ConfigError("evaluator train: needs epochs >= 1, batch_size >= 1, lr > 0 and max_samples >= 10")
        self.arch_space = space
        self.epochs, self.batch_size, self.lr, self.seed = int(epochs), int(batch_size), float(lr), int(seed)
        self.threads, self.device = threads, device
        self.data_name = data
        train, val, self.in_channels, self.num_classes = load_splits(data, seed=seed, max_samples=max_samples,
                                                                     image_size=image_size)
        self.train = (train[0].to(device), train[1].to(device))
        self.val = (val[0].to(device), val[1].to(device))
        self._cache: dict[tuple[str, int], EvalResult] = {}

    def evaluate(self, arch: Any, budget: float | None = None) -> EvalResult:
        epochs = max(1, int(round(budget))) if budget is not None else self.epochs
        key = (self.arch_space.hash(arch), epochs)
        if key in self._cache:
            r = self._cache[key]
            return EvalResult(r.accuracy, dict(r.cost), r.budget, cached=True)
        with torch_threads(self.threads):
            r = self._train(arch, epochs)
        self._cache[key] = r
        return r

    def _train(self, arch: Any, epochs: int) -> EvalResult:
        from dnas.counting import count_params
        from dnas.data import Batches

        s = arch_seed(self.seed, self.arch_space.hash(arch))
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            model = self.arch_space.build(arch, num_classes=self.num_classes, in_channels=self.in_channels,
                                     **self.arch_space.proxy_net).to(self.device)
            batches = Batches(*self.train, self.batch_size, shuffle=True, seed=s)
            opt = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9, weight_decay=3e-4)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * len(batches)))
            diverged = False
            model.train()
            for epoch in range(epochs):
                batches.set_epoch(epoch)
                for xb, yb in batches:
                    loss = F.cross_entropy(logits_of(model(xb)), yb)
                    if not torch.isfinite(loss):
                        diverged = True
                        break
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                    opt.step()
                    sched.step()
                if diverged:
                    break
            model.eval()
            acc = accuracy(model, *self.val)
        cost = {"params_m": count_params(model) / 1e6, "seconds": time.perf_counter() - start, "epochs": float(epochs)}
        if diverged:
            cost["diverged"] = 1.0
        return EvalResult(accuracy=acc, cost=cost, budget=float(epochs))


@EVALUATORS.register("train")
def _make_train(arg: str, space: Any) -> TrainEvaluator:
    return TrainEvaluator(space, **parse_options("train", arg, TRAIN_OPTIONS, "epochs"))


_make_train.options = TRAIN_OPTIONS  # type: ignore[attr-defined]  (read by complete_spec)
