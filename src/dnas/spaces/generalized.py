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


# ---------------------------------------------------------------------------- the SearchSpace
import random as _random  # noqa: E402
from dataclasses import field  # noqa: E402
from typing import ClassVar  # noqa: E402

from dnas.errors import GenotypeError  # noqa: E402
from dnas.spaces.base import SearchSpace, register_space  # noqa: E402

_ARCH_KEYS = {"format", "version", "space", "structure", "operators", "meta", "accuracy"}


@dataclass(frozen=True)
class GeneralizedArch:
    """One architecture of the generalized space: the stages in use (structure and operators
    together). Immutable and hashable; ``meta`` is provenance, outside equality and the hash.
    Its genotype JSON is ``{"space": "generalized", "structure": {...}, "operators": {...}}``,
    the file the bohb-alt search writes."""

    stages: tuple[StageSpec, ...]
    meta: dict = field(default_factory=dict, compare=False, hash=False, repr=False)
    space: ClassVar[str] = "generalized"
    is_hierarchical: ClassVar[bool] = False
    #: ``build_network`` (and so ``dnas train``) builds this network class for this genotype.
    network: ClassVar[str] = "generalized"

    @classmethod
    def of(cls, structure: Mapping[str, Any], operators: Mapping[str, Any], meta: dict | None = None) -> "GeneralizedArch":
        try:
            return cls(tuple(stage_specs(structure, operators)), dict(meta or {}))
        except ConfigError as e:
            raise GenotypeError(f"generalized genotype: {e}") from None

    def split(self) -> tuple[dict, dict]:
        """The ``(structure, operators)`` dicts of the two sub-spaces."""
        d = self.to_dict(with_meta=False)
        return d["structure"], d["operators"]

    def to_dict(self, with_meta: bool = True) -> dict[str, Any]:
        s: dict[str, Any] = {"num_stages": len(self.stages)}
        o: dict[str, Any] = {}
        for k, st in enumerate(self.stages, start=1):
            s.update({f"depth_{k}": st.depth, f"width_{k}": st.width})
            o.update({f"op_{k}": st.op, f"act_{k}": st.act, f"init_{k}": st.init})
        d: dict[str, Any] = {"format": "dnas.genotype", "version": 1, "space": "generalized", "structure": s, "operators": o}
        if with_meta and self.meta:
            d["meta"] = dict(self.meta)
        return d

    @classmethod
    def from_dict(cls, d: Any, ops: Any = None) -> "GeneralizedArch":
        if not isinstance(d, dict) or d.get("space", "generalized") != "generalized":
            raise GenotypeError("genotype: expected a generalized genotype object (space: generalized)")
        unknown = set(d) - _ARCH_KEYS
        if unknown:
            raise GenotypeError(f"generalized genotype: unknown field(s) {', '.join(sorted(unknown))}")
        for key in ("structure", "operators"):
            if not isinstance(d.get(key), dict):
                raise GenotypeError(f"generalized genotype.{key}: missing or not an object")
        return cls.of(d["structure"], d["operators"], d.get("meta") if isinstance(d.get("meta"), dict) else None)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: Any) -> Any:
        from dnas.io import write_text

        return write_text(path, self.to_json() + "\n")

    def hash(self) -> str:
        text = json.dumps(self.to_dict(with_meta=False), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_meta(self, **meta: Any) -> "GeneralizedArch":
        return GeneralizedArch(self.stages, {**self.meta, **meta})

    def validate(self) -> "GeneralizedArch":
        return self

    def __str__(self) -> str:
        return " | ".join(f"{st.depth}x{st.op}@{st.width} {st.act}/{st.init}" for st in self.stages)


class GeneralizedRegisteredNetwork(GeneralizedNetwork):
    """The generalized network under the :data:`dnas.models.NETWORKS` contract (so ``dnas train``
    trains a generalized genotype): the genotype fixes depth and widths, so ``C`` and ``layers``
    are unused; no auxiliary head, no drop path; ``(logits, None)`` in train mode."""

    def __init__(self, genotype: Any, C: int = 0, layers: int = 0, num_classes: int = 10, in_channels: int = 3,
                 auxiliary: bool = False, drop_path_prob: float = 0.0) -> None:
        a = genotype if isinstance(genotype, GeneralizedArch) else GeneralizedArch.from_dict(genotype)
        super().__init__(a.stages, in_channels, num_classes)
        self.drop_path_prob = drop_path_prob

    def forward(self, x: torch.Tensor):  # type: ignore[override]
        logits = super().forward(x)
        return (logits, None) if self.training else logits


def _register_network() -> None:
    from dnas.models import NETWORKS

    if "generalized" not in NETWORKS:
        NETWORKS.register("generalized", GeneralizedRegisteredNetwork)


_register_network()


@register_space("generalized")
class GeneralizedSpace(SearchSpace):
    """The generalized (GPNAS) space as one space: structure x operators.

    Categorical view: ``num_stages`` (1..max_stages), then for each of ``max_stages`` stages its
    depth, width, block, activation and initialisation; the genes of stages beyond
    ``num_stages`` are inactive (encoded 0, ignored by ``decode``), as ConfigSpace's conditions
    make them for the alternating BOHBs. Every vector decodes to a valid network; ``neighbours``
    changes one active gene (or the number of stages). No weight sharing: architectures are
    scored by short training (``train:`` evaluator, or the bohb-alt search's own evaluator).
    """

    input_shape = (1, 8, 8)
    alternating = True

    def __init__(self, max_stages: int = 3, max_depth: int = 3, widths: Sequence[int] = DEFAULT_WIDTHS,
                 blocks: Sequence[str] = BLOCKS, activations: Sequence[str] = tuple(ACTIVATIONS),
                 inits: Sequence[str] = tuple(INITS)) -> None:
        if max_stages < 1 or max_depth < 1 or not widths:
            raise ConfigError("generalized space: needs max_stages >= 1, max_depth >= 1 and at least one width")
        self.max_stages, self.max_depth = int(max_stages), int(max_depth)
        self.widths = tuple(sorted(int(w) for w in widths))
        self.blocks, self.activations, self.inits = tuple(blocks), tuple(activations), tuple(inits)
        operator_space(1, blocks=self.blocks, activations=self.activations, inits=self.inits)  # validates the names
        per = (self.max_depth, len(self.widths), len(self.blocks), len(self.activations), len(self.inits))
        self._per = per
        self._cards = (self.max_stages,) + per * self.max_stages

    def parse(self, obj: Any) -> GeneralizedArch:
        if isinstance(obj, GeneralizedArch):
            a = obj
        elif isinstance(obj, dict):
            a = GeneralizedArch.from_dict(obj)
        elif isinstance(obj, (tuple, list)) and len(obj) == 2:
            a = GeneralizedArch.of(obj[0], obj[1])
        else:
            from pathlib import Path

            p = Path(str(obj))
            p = p / "genotype.json" if p.is_dir() else p
            try:
                a = GeneralizedArch.from_dict(json.loads(p.read_text()))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise GenotypeError(f"generalized genotype {str(obj)!r}: not a readable genotype file ({e})") from None
        self.encode(a)  # inside this space's choices?
        return a

    def read_genotype(self, d: dict) -> GeneralizedArch:
        return GeneralizedArch.from_dict(d)

    def to_dict(self, arch: GeneralizedArch) -> dict:
        return arch.to_dict(with_meta=False)

    def hash(self, arch: GeneralizedArch) -> str:
        return arch.hash()

    def op_names(self, arch: GeneralizedArch) -> list[str]:
        return [st.op for st in arch.stages]

    def describe(self, arch: GeneralizedArch) -> list[str]:
        return [f"stage {k}: {st.depth} x {st.op}, {st.width} channels, {st.act}, init {st.init}"
                for k, st in enumerate(arch.stages, start=1)]

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return self._cards

    def encode(self, arch: GeneralizedArch) -> list[int]:
        if not 1 <= len(arch.stages) <= self.max_stages:
            raise GenotypeError(f"generalized genotype.structure.num_stages: {len(arch.stages)} outside 1..{self.max_stages}")
        out = [len(arch.stages) - 1]
        for k in range(self.max_stages):
            if k >= len(arch.stages):
                out += [0] * len(self._per)
                continue
            st = arch.stages[k]
            try:
                out += [st.depth - 1, self.widths.index(st.width), self.blocks.index(st.op),
                        self.activations.index(st.act), self.inits.index(st.init)]
            except ValueError:
                raise GenotypeError(f"generalized genotype: stage {k + 1} ({st}) uses a choice outside this space") from None
            if not 1 <= st.depth <= self.max_depth:
                raise GenotypeError(f"generalized genotype.structure.depth_{k + 1}: {st.depth} outside 1..{self.max_depth}")
        return out

    def decode(self, vector: Sequence[int]) -> GeneralizedArch:
        v = [int(x) for x in vector]
        if len(v) != len(self._cards) or any(not 0 <= x < c for x, c in zip(v, self._cards)):
            raise ValueError(f"generalized space: vector {v} outside the cardinalities")
        stages = []
        for k in range(v[0] + 1):
            d, w, b, a, i = v[1 + 5 * k : 6 + 5 * k]
            stages.append(StageSpec(d + 1, self.widths[w], self.blocks[b], self.activations[a], self.inits[i]))
        return GeneralizedArch(tuple(stages))

    def sample(self, rng: _random.Random) -> GeneralizedArch:
        """Uniform over architectures: ``n`` stages with probability proportional to the number
        of ``n``-stage networks (``P ** n``), then every active gene uniformly."""
        P = math.prod(self._per)
        n = rng.choices(range(self.max_stages), weights=[P ** (k + 1) for k in range(self.max_stages)])[0]
        v = [n] + [rng.randrange(c) if k // 5 <= n else 0 for k, c in enumerate(self._cards[1:])]
        return self.decode(v)

    def build(self, arch: GeneralizedArch, *, num_classes: int = 10, in_channels: int | None = None,
              **_: Any) -> nn.Module:
        a = arch if isinstance(arch, GeneralizedArch) else self.parse(arch)  # any valid arch builds
        return GeneralizedNetwork(a.stages, in_channels or self.input_shape[0], num_classes)


__all__ = [
    "ACTIVATIONS",
    "GeneralizedArch",
    "GeneralizedSpace",
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
