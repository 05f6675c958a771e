"""The generalized search space (GPNAS-style): network structure x operator space.

Why two spaces: the structure (how many stages, how deep and wide each is) and the operators
(which block, activation function and weight initialisation each stage uses) interact weakly
enough to be searched one at a time with the other held fixed, which is what the alternating
BOHB search (:mod:`dnas.strategies.alternating`) does. Each is a ConfigSpace
``ConfigurationSpace``:

* :func:`structure_space` -- ``num_stages`` in 1..max_stages; per stage ``k``: ``depth_k``
  (blocks) and ``width_k`` (channels, ordinal). Stage ``k``'s entries are only active when
  ``num_stages >= k`` (ConfigSpace conditions), so BOHB never models unused values.
* :func:`operator_space` -- per stage ``k``: ``op_k`` (block type, :data:`BLOCKS`),
  ``act_k`` (:data:`ACTIVATIONS`) and ``init_k`` (:data:`INITS`). Defined for ``max_stages``
  stages; entries of stages the structure does not have are ignored.

:func:`build_generalized_network` turns one of each into an ``nn.Module``: a 3x3 conv stem at
``width_1``, the stages (the first block of every stage after the first has stride 2; a block
adds its input back when the shapes allow), global average pooling and a linear classifier.
:class:`GeneralizedEvaluator` trains such a network for ``budget`` epochs on built-in data
(``digits`` / ``mnist`` via :mod:`dnas.data`) and returns its validation accuracy.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from ConfigSpace import (
    CategoricalHyperparameter,
    ConfigurationSpace,
    GreaterThanCondition,
    OrdinalHyperparameter,
    UniformIntegerHyperparameter,
)

from dnas.errors import ConfigError
from dnas.evaluators.base import EvalResult

#: Activation functions: name -> module factory.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
    "mish": nn.Mish,
    "elu": nn.ELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
}


def _init_default(w: torch.Tensor) -> None:
    pass  # keep PyTorch's own initialisation


#: Weight initialisations applied to every conv weight of a stage (and of the stem, for stage 1): name -> in-place fn.
INITS: dict[str, Callable[[torch.Tensor], Any]] = {
    "default": _init_default,
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "xavier_normal": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "orthogonal": nn.init.orthogonal_,
    "trunc_normal": lambda w: nn.init.trunc_normal_(w, std=0.02),
}

#: Block types a stage can be made of.
BLOCKS: tuple[str, ...] = ("conv3x3", "sep_conv3x3", "sep_conv5x5", "mbconv3", "mbconv5")

DEFAULT_WIDTHS: tuple[int, ...] = (8, 16, 24, 32, 48, 64)


# ---------------------------------------------------------------------------- spaces
def structure_space(
    max_stages: int = 3,
    *,
    max_depth: int = 3,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    seed: int | None = None,
) -> ConfigurationSpace:
    """Stages, depth and width per stage; stage ``k > 1`` entries are active iff ``num_stages >= k``."""
    if max_stages < 1 or max_depth < 1 or not widths:
        raise ConfigError("structure_space: need max_stages >= 1, max_depth >= 1 and at least one width")
    widths = tuple(sorted(int(w) for w in widths))
    cs = ConfigurationSpace(seed=seed)
    n = UniformIntegerHyperparameter("num_stages", 1, max_stages, default_value=min(2, max_stages))
    cs.add(n)
    default_width = widths[min(1, len(widths) - 1)]
    for k in range(1, max_stages + 1):
        d = UniformIntegerHyperparameter(f"depth_{k}", 1, max_depth, default_value=1)
        w = OrdinalHyperparameter(f"width_{k}", list(widths), default_value=default_width)
        cs.add([d, w])
        if k > 1:
            cs.add([GreaterThanCondition(d, n, k - 1), GreaterThanCondition(w, n, k - 1)])
    return cs


def operator_space(
    max_stages: int = 3,
    *,
    blocks: Sequence[str] = BLOCKS,
    activations: Sequence[str] = tuple(ACTIVATIONS),
    inits: Sequence[str] = tuple(INITS),
    seed: int | None = None,
) -> ConfigurationSpace:
    """Block type, activation and weight initialisation for each of ``max_stages`` stages."""
    for field, chosen, known in (("blocks", blocks, BLOCKS), ("activations", activations, ACTIVATIONS),
                                 ("inits", inits, INITS)):
        bad = [c for c in chosen if c not in known]
        if bad or not chosen:
            raise ConfigError(f"operator_space.{field}: unknown or empty {bad or chosen}; choose from {', '.join(known)}")
    cs = ConfigurationSpace(seed=seed)
    for k in range(1, max_stages + 1):
        cs.add([
            CategoricalHyperparameter(f"op_{k}", list(blocks), default_value=blocks[0]),
            CategoricalHyperparameter(f"act_{k}", list(activations),
                                      default_value="relu" if "relu" in activations else activations[0]),
            CategoricalHyperparameter(f"init_{k}", list(inits),
                                      default_value="kaiming_normal" if "kaiming_normal" in inits else inits[0]),
        ])
    return cs


# ---------------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class StageSpec:
    depth: int
    width: int
    op: str
    act: str
    init: str


def _get(cfg: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        v = cfg[key]
    except KeyError:
        raise ConfigError(f"{where}.{key}: missing; it is required by the generalized space") from None
    return v.item() if isinstance(v, np.generic) else v


def stage_specs(structure: Mapping[str, Any], operators: Mapping[str, Any]) -> list[StageSpec]:
    """The per-stage description of ``(structure, operators)``, validated."""
    n = int(_get(structure, "num_stages", "structure"))
    if n < 1:
        raise ConfigError("structure.num_stages: must be >= 1")
    out = []
    for k in range(1, n + 1):
        spec = StageSpec(
            depth=int(_get(structure, f"depth_{k}", "structure")),
            width=int(_get(structure, f"width_{k}", "structure")),
            op=str(_get(operators, f"op_{k}", "operators")),
            act=str(_get(operators, f"act_{k}", "operators")),
            init=str(_get(operators, f"init_{k}", "operators")),
        )
        if spec.depth < 1 or spec.width < 1:
            raise ConfigError(f"structure: stage {k} needs depth >= 1 and width >= 1")
        for field, value, known in (("op", spec.op, BLOCKS), ("act", spec.act, ACTIVATIONS), ("init", spec.init, INITS)):
            if value not in known:
                raise ConfigError(f"operators.{field}_{k}: unknown {value!r}; choose from {', '.join(known)}")
        out.append(spec)
    return out


# ---------------------------------------------------------------------------- blocks
def _conv_bn(c_in: int, c_out: int, k: int, stride: int, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]


def make_block(op: str, c_in: int, c_out: int, stride: int, act: str) -> nn.Module:
    """One block of type ``op`` mapping ``c_in`` to ``c_out`` channels."""
    a = ACTIVATIONS[act]
    if op == "conv3x3":
        layers = [*_conv_bn(c_in, c_out, 3, stride), a()]
    elif op in ("sep_conv3x3", "sep_conv5x5"):
        k = 3 if op == "sep_conv3x3" else 5
        layers = [*_conv_bn(c_in, c_in, k, stride, groups=c_in), a(), *_conv_bn(c_in, c_out, 1, 1), a()]
    elif op in ("mbconv3", "mbconv5"):  # MobileNetV2 inverted residual, expansion 3
        k, mid = (3 if op == "mbconv3" else 5), 3 * c_in
        layers = [*_conv_bn(c_in, mid, 1, 1), a(), *_conv_bn(mid, mid, k, stride, groups=mid), a(),
                  *_conv_bn(mid, c_out, 1, 1)]
    else:
        raise ConfigError(f"operators: unknown block {op!r}; choose from {', '.join(BLOCKS)}")
    return _Block(nn.Sequential(*layers), residual=(stride == 1 and c_in == c_out))


class _Block(nn.Module):
    def __init__(self, body: nn.Module, residual: bool) -> None:
        super().__init__()
        self.body = body
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class GeneralizedNetwork(nn.Module):
    """Stem, the searched stages, global pooling and a linear classifier."""

    def __init__(self, specs: Sequence[StageSpec], in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.specs = list(specs)
        first = self.specs[0]
        self.stem = nn.Sequential(*_conv_bn(in_channels, first.width, 3, 1), ACTIVATIONS[first.act]())
        stages, c = [], first.width
        for k, spec in enumerate(self.specs):
            blocks = []
            for b in range(spec.depth):
                stride = 2 if (k > 0 and b == 0) else 1
                blocks.append(make_block(spec.op, c, spec.width, stride, spec.act))
                c = spec.width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.classifier = nn.Linear(c, num_classes)
        for module, spec in [(self.stem, first)] + list(zip(self.stages, self.specs)):
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    INITS[spec.init](m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build_generalized_network(
    structure_cfg: Mapping[str, Any],
    operator_cfg: Mapping[str, Any],
    in_channels: int,
    num_classes: int,
    *,
    seed: int | None = None,
) -> GeneralizedNetwork:
    """Build the network a (structure, operators) pair describes; ``seed`` fixes its initial
    weights without touching the global RNG."""
    specs = stage_specs(structure_cfg, operator_cfg)
    if seed is None:
        return GeneralizedNetwork(specs, in_channels, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return GeneralizedNetwork(specs, in_channels, num_classes)


def arch_to_dict(structure: Mapping[str, Any], operators: Mapping[str, Any]) -> dict:
    """A JSON-ready ``{"structure": ..., "operators": ...}`` with only the stages in use."""
    specs = stage_specs(structure, operators)
    s = {"num_stages": len(specs)}
    o = {}
    for k, spec in enumerate(specs, start=1):
        s.update({f"depth_{k}": spec.depth, f"width_{k}": spec.width})
        o.update({f"op_{k}": spec.op, f"act_{k}": spec.act, f"init_{k}": spec.init})
    return {"structure": s, "operators": o}


def arch_seed(seed: int, structure: Mapping[str, Any], operators: Mapping[str, Any]) -> int:
    """A per-architecture seed, so an architecture's score does not depend on evaluation order."""
    text = json.dumps(arch_to_dict(structure, operators), sort_keys=True)
    return int.from_bytes(hashlib.sha256(f"{seed}:{text}".encode()).digest()[:4], "little")


# ---------------------------------------------------------------------------- evaluator
class GeneralizedEvaluator:
    """Short real training of generalized-space networks; ``budget`` = epochs.

    ``evaluate((structure, operators), budget)`` trains a fresh network for ``round(budget)``
    epochs (at least 1) with Adam and a cosine schedule on the train split of ``data`` and
    returns the validation accuracy in percent. The initial weights and batch order depend only
    on ``seed`` and the architecture, so a repeated evaluation gives the same number. A run whose
    loss becomes non-finite stops early and is scored as it stands (``cost["diverged"] = 1``),
    so one bad initialisation does not abort a search.
    """

    def __init__(
        self,
        data: str = "digits",
        *,
        seed: int = 0,
        batch_size: int = 32,
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        max_train_samples: int | None = None,
        device: str = "cpu",
        num_threads: int | None = 1,
    ) -> None:
        from dnas.data import load_dataset, split_dataset

        ds = load_dataset(data)
        splits = split_dataset(ds, seed=seed)
        xtr, ytr = splits.train
        if max_train_samples is not None:
            xtr, ytr = xtr[:max_train_samples], ytr[:max_train_samples]
        self.data_name = data
        self.train = (xtr.to(device), ytr.to(device))
        self.val = (splits.val[0].to(device), splits.val[1].to(device))
        self.in_channels = int(ds.x.shape[1])
        self.num_classes = int(ds.num_classes)
        self.seed, self.batch_size, self.lr, self.weight_decay = seed, batch_size, lr, weight_decay
        self.device = device
        self.num_threads = num_threads

    def evaluate(self, arch: Any, budget: float | None = None) -> EvalResult:
        # Tiny networks gain nothing from intra-op threads, and several trials running side by
        # side (Ray workers, a busy machine) make extra threads oversubscribe the cores badly
        # (we measured 100x slower steps), so training runs on ``num_threads`` threads.
        if self.num_threads is None:
            return self._evaluate(arch, budget)
        before = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            return self._evaluate(arch, budget)
        finally:
            torch.set_num_threads(before)

    def _evaluate(self, arch: Any, budget: float | None = None) -> EvalResult:
        from dnas.data import Batches

        structure, operators = _split_arch(arch)
        epochs = max(1, int(round(budget if budget is not None else 1)))
        s = arch_seed(self.seed, structure, operators)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            model = build_generalized_network(structure, operators, self.in_channels, self.num_classes).to(self.device)
            batches = Batches(*self.train, self.batch_size, shuffle=True, seed=s)
            opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(batches))
            diverged = False
            model.train()
            for epoch in range(epochs):
                batches.set_epoch(epoch)
                for xb, yb in batches:
                    loss = F.cross_entropy(model(xb), yb)
                    if not torch.isfinite(loss):
                        diverged = True
                        break
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                if diverged:
                    break
            acc = self._accuracy(model)
        params_m = sum(p.numel() for p in model.parameters()) / 1e6
        cost = {"params_m": params_m, "seconds": time.perf_counter() - start, "epochs": float(epochs)}
        if diverged:
            cost["diverged"] = 1.0
        return EvalResult(accuracy=acc, cost=cost, budget=float(epochs))

    @torch.no_grad()
    def _accuracy(self, model: nn.Module) -> float:
        model.eval()
        x, y = self.val
        correct = 0
        for i in range(0, len(y), 512):
            out = model(x[i : i + 512])
            correct += int((out.argmax(1) == y[i : i + 512]).sum())
        acc = 100.0 * correct / max(len(y), 1)
        return acc if math.isfinite(acc) else 0.0


def _split_arch(arch: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    if isinstance(arch, Mapping) and "structure" in arch and "operators" in arch:
        return arch["structure"], arch["operators"]
    if isinstance(arch, (tuple, list)) and len(arch) == 2:
        return arch[0], arch[1]
    raise ConfigError("generalized arch: expected (structure, operators) or {'structure': ..., 'operators': ...}")


__all__ = [
    "ACTIVATIONS",
    "BLOCKS",
    "INITS",
    "GeneralizedEvaluator",
    "GeneralizedNetwork",
    "StageSpec",
    "arch_to_dict",
    "build_generalized_network",
    "make_block",
    "operator_space",
    "stage_specs",
    "structure_space",
]
