"""The FBNetV2 mobile space (DMaskingNAS, Wan et al. 2020): inverted-residual blocks whose hidden
width, and the network's input resolution, are searched by masking shared weights.

Space: a 3x3 stem conv to ``stem`` channels, then ``B`` inverted-residual blocks (1x1 expand
conv, kxk depthwise conv with the block's stride, 1x1 projection; BN after each conv, ReLU6
after the first two; identity shortcut when the stride is 1 and input and output channels
agree), global average pooling and a linear classifier. Block ``i``'s *hidden* width is
searched among ``round(e * c_in)`` for the expansion candidates ``e``, and the network's input
resolution among fractions of the image size.

Search (:class:`MobileSupernet`), all candidates sharing one set of weights:

* **channels**: each block computes its maximum hidden width once; the hidden activations are
  multiplied (after the expand and the depthwise stages) by the Gumbel-softmax-weighted sum of
  prefix masks (:mod:`dnas.relax.masking`). No weights or activations per candidate;
* **resolution**: the input is subsampled (nearest pixels, as ``F.interpolate`` with
  ``nearest-exact``) to each candidate size, the backbone runs on the small map, and its output
  is placed back at the corresponding (spaced) positions of a zero map of the full-resolution
  output size, scaled so that global pooling averages over the candidate's own pixels; the
  placed maps are summed with the resolution weights. In training the resolution is a
  straight-through hard sample (value one-hot, gradient of the soft sample), so one backbone
  pass runs per step and memory does not grow with the number of candidate resolutions; in
  eval mode the most probable resolution runs.

The derived :class:`MobileGenotype` (space ``fbnetv2``) states per-block hidden widths, the
resolution, and the block layout, so it is self-contained; :func:`build_mobile_network`
builds the evaluation network, and :func:`extract_subnet` copies the supernet's shared
weights into it (with all mask weight on one width per block, the supernet computes exactly
that network - see the tests).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.errors import ConfigError, GenotypeError
from dnas.relax.masking import channel_mask, prefix_masks
from dnas.archsplit import ArchWeightSplit

FORMAT = "dnas.genotype"


def conv_out(H: int, stride: int) -> int:
    """Output size of a 'same'-padded odd-kernel conv."""
    return (H + stride - 1) // stride


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest-pixel subsampling to ``size`` (identity at the input size)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="nearest-exact")


# ---------------------------------------------------------------------------------- genotype
@dataclass(frozen=True)
class MobileGenotype:
    """A network of the fbnetv2 space: ``blocks`` are ``(c_out, stride, kernel, hidden)``."""

    stem: int
    blocks: tuple[tuple[int, int, int, int], ...]
    resolution: int
    input_size: int
    space: str = "fbnetv2"
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(tuple(int(v) for v in b) for b in self.blocks))
        self.validate()

    # the collapse guard reads DARTS cells; this space has none
    normal: tuple = ()
    reduce: tuple = ()
    #: build_network (and so ``dnas train``) builds this network class for this genotype
    network: ClassVar[str] = "fbnetv2"
    is_hierarchical: ClassVar[bool] = False

    @property
    def channels(self) -> list[int]:
        """Searched hidden width of each block."""
        return [b[3] for b in self.blocks]

    def validate(self) -> "MobileGenotype":
        if self.stem < 1:
            raise GenotypeError(f"genotype.stem: must be >= 1, got {self.stem}")
        if not self.blocks:
            raise GenotypeError("genotype.blocks: needs at least one block")
        for i, b in enumerate(self.blocks):
            if len(b) != 4 or min(b) < 1 or b[1] not in (1, 2) or b[2] % 2 == 0:
                raise GenotypeError(f"genotype.blocks[{i}]: expected [c_out >= 1, stride 1|2, odd kernel, hidden >= 1], got {list(b)}")
        if not 1 <= self.resolution <= self.input_size:
            raise GenotypeError(f"genotype.resolution: must be in [1, input_size={self.input_size}], got {self.resolution}")
        return self

    def to_dict(self, with_meta: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"format": FORMAT, "version": 1, "space": self.space, "stem": self.stem,
                             "blocks": [list(b) for b in self.blocks], "channels": self.channels,
                             "resolution": self.resolution, "input_size": self.input_size}
        if with_meta and self.meta:
            d["meta"] = dict(self.meta)
        return d

    @classmethod
    def from_dict(cls, d: Any, ops: Any = None) -> "MobileGenotype":
        if not isinstance(d, dict) or d.get("space") != "fbnetv2":
            raise GenotypeError("genotype: expected an fbnetv2 genotype object (space: fbnetv2)")
        unknown = set(d) - {"format", "version", "space", "stem", "blocks", "channels", "resolution", "input_size", "meta"}
        if unknown:
            raise GenotypeError(f"genotype: unknown field(s) {', '.join(sorted(unknown))} in an fbnetv2 genotype")
        try:
            blocks = [tuple(b) for b in d["blocks"]]
            g = cls(int(d["stem"]), tuple(blocks), int(d["resolution"]), int(d["input_size"]), "fbnetv2", dict(d.get("meta") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise GenotypeError(f"genotype: fbnetv2 genotype missing or bad field ({e}); needs stem, blocks, resolution, input_size") from None
        if "channels" in d and list(d["channels"]) != g.channels:
            raise GenotypeError("genotype.channels: disagrees with the hidden widths in blocks")
        return g

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | os.PathLike) -> Path:
        from dnas.io import write_text

        return write_text(path, self.to_json() + "\n")

    def hash(self) -> str:
        canon = json.dumps(self.to_dict(with_meta=False), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def with_meta(self, **meta: Any) -> "MobileGenotype":
        return MobileGenotype(self.stem, self.blocks, self.resolution, self.input_size, self.space, {**self.meta, **meta})

    def __str__(self) -> str:
        return f"MobileGenotype(channels={self.channels}, resolution={self.resolution}/{self.input_size})"


def load_mobile_genotype(spec: "MobileGenotype | dict | str | os.PathLike") -> MobileGenotype:
    if isinstance(spec, MobileGenotype):
        return spec
    if isinstance(spec, dict):
        return MobileGenotype.from_dict(spec)
    p = Path(spec)
    if not p.exists():
        raise GenotypeError(f"genotype: file {str(p)!r} does not exist")
    from dnas.errors import DnasError
    from dnas.io import read_json

    try:
        d = read_json(p, "genotype")
    except DnasError as e:
        raise GenotypeError(str(e)) from None
    return MobileGenotype.from_dict(d)


# ---------------------------------------------------------------------------------- space
@dataclass(frozen=True)
class MobileSpace:
    """Block layout ``(c_in, c_out, stride, kernel, hidden candidates)`` and resolutions."""

    stem: int
    blocks: tuple[tuple[int, int, int, int, tuple[int, ...]], ...]
    resolutions: tuple[int, ...]
    input_size: int
    in_channels: int = 3
    num_classes: int = 10

    @classmethod
    def make(cls, stem: int = 8, layers: int = 5, expansions: Sequence[float] = (1, 2, 3, 4),
             resolutions: Sequence[float] = (1.0, 0.75, 0.5), input_size: int = 32, in_channels: int = 3,
             num_classes: int = 10, kernel: int = 3) -> "MobileSpace":
        """``layers`` blocks; the width doubles at two stride-2 blocks (1/3 and 2/3 of depth)."""
        from dnas.models.cell import reduction_layers

        if layers < 1 or stem < 1 or not expansions or not resolutions:
            raise ConfigError("fbnetv2 space: needs layers >= 1, init_channels >= 1, expansions and resolutions")
        if min(expansions) <= 0 or not all(0 < r <= 1 for r in resolutions):
            raise ConfigError("mobile_expansions must be > 0 and mobile_resolutions in (0, 1]")
        reds = set(reduction_layers(layers)) if layers >= 3 else set()
        blocks, c_in, c = [], stem, stem
        for i in range(layers):
            s = 2 if i in reds else 1
            if s == 2:
                c *= 2
            hidden = tuple(max(1, int(round(e * c_in))) for e in sorted(expansions))
            blocks.append((c_in, c, s, kernel, hidden))
            c_in = c
        res = tuple(sorted({max(4, int(round(r * input_size))) for r in resolutions}, reverse=True))
        return cls(stem, tuple(blocks), res, input_size, in_channels, num_classes)

    @property
    def num_options(self) -> int:
        return len(self.blocks[0][4])

    def genotype(self, hidden_idx: Sequence[int], res_idx: int, **meta: Any) -> MobileGenotype:
        blocks = tuple((c_out, s, k, hid[i]) for (_, c_out, s, k, hid), i in zip(self.blocks, hidden_idx))
        return MobileGenotype(self.stem, blocks, self.resolutions[res_idx], self.input_size, "fbnetv2", meta)

    def output_size(self, H: int) -> int:
        for _, _, s, _, _ in self.blocks:
            H = conv_out(H, s)
        return H


# ---------------------------------------------------------------------------------- modules
class InvertedResidual(nn.Module):
    """MobileNetV2 block; ``forward(x, mask)`` multiplies the hidden activations by ``mask``."""

    def __init__(self, c_in: int, hidden: int, c_out: int, stride: int, kernel: int = 3):
        super().__init__()
        self.use_res = stride == 1 and c_in == c_out
        self.expand = nn.Sequential(nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
                                nn.BatchNorm2d(hidden), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.expand(x)
        if mask is not None:
            h = h * mask
        h = self.dw(h)
        if mask is not None:  # BN shifts masked (zero) channels: zero them again
            h = h * mask
        y = self.project(h)
        return x + y if self.use_res else y


def _stem(in_channels: int, stem: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU6())


class MobileNetwork(nn.Module):
    """Evaluation network of a :class:`MobileGenotype`. Eval mode: ``forward(x) -> logits``;
    train mode: ``(logits, None)`` like the other evaluation networks (no auxiliary head).
    Registered as ``NETWORKS["fbnetv2"]``; ``C``/``layers``/``auxiliary`` from
    ``build_network`` are ignored (the genotype fixes the widths and depth)."""

    darts_genotype = True  # build_network resolves names/paths first (load_genotype reads fbnetv2 files)

    def __init__(self, genotype: MobileGenotype, num_classes: int = 10, in_channels: int = 3, **_: Any):
        super().__init__()
        genotype = load_mobile_genotype(genotype)
        self.genotype = genotype
        self.resolution = genotype.resolution
        self.drop_path_prob = 0.0
        self.stem = _stem(in_channels, genotype.stem)
        c_in, blocks = genotype.stem, []
        for c_out, s, k, hidden in genotype.blocks:
            blocks.append(InvertedResidual(c_in, hidden, c_out, s, k))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(resize(x, self.resolution))
        for b in self.blocks:
            h = b(h)
        return h

    def forward(self, x: torch.Tensor):
        logits = self.classifier(self.features(x).mean((2, 3)))
        return (logits, None) if self.training else logits


def build_mobile_network(genotype, num_classes: int = 10, in_channels: int = 3) -> MobileNetwork:
    return MobileNetwork(load_mobile_genotype(genotype), num_classes, in_channels)


class MobileSupernet(ArchWeightSplit, nn.Module):
    """The masked one-shot network of a :class:`MobileSpace` under a relaxation."""

    space_name = "fbnetv2"

    def __init__(self, space: MobileSpace, relax) -> None:
        super().__init__()
        self.space, self.relax = space, relax
        self.steps = 1
        self.stem = _stem(space.in_channels, space.stem)
        self.blocks = nn.ModuleList(InvertedResidual(ci, max(h), co, s, k) for ci, co, s, k, h in space.blocks)
        for i, (_, _, _, _, h) in enumerate(space.blocks):
            self.register_buffer(f"masks_{i}", prefix_masks(h, max(h)), persistent=False)
        self.classifier = nn.Linear(space.blocks[-1][1], space.num_classes)
        # architecture: one row of width logits per block, one row of resolution logits
        self.alpha_width = nn.Parameter(1e-3 * torch.randn(len(space.blocks), space.num_options))
        self.alpha_res = nn.Parameter(1e-3 * torch.randn(1, len(space.resolutions)))

    # ------------------------------------------------------------------ parameter groups
    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha_width, self.alpha_res]

    def masks(self, i: int) -> torch.Tensor:
        return getattr(self, f"masks_{i}")

    # ------------------------------------------------------------------ forward
    def backbone(self, x: torch.Tensor, width_w: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for i, b in enumerate(self.blocks):
            h = b(h, channel_mask(width_w[i], self.masks(i)))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.relax
        width_w = r.op_weights(self.alpha_width, training=self.training)
        res_w = r.op_weights(self.alpha_res, training=self.training)[0]
        # one resolution per forward: a straight-through hard sample of the resolution weights
        j = int(res_w.argmax())
        res_w = F.one_hot(torch.tensor(j), res_w.numel()).to(res_w) - res_w.detach() + res_w
        H = x.shape[-1]
        full = self.space.output_size(H)
        out = None
        for j, size in enumerate(self.space.resolutions):
            if float(res_w[j].detach()) == 0.0:
                continue
            f = self.backbone(resize(x, size), width_w)
            out_j = place_back(f, full) * res_w[j]
            out = out_j if out is None else out + out_j
        return self.classifier(out.mean((2, 3)))

    # ------------------------------------------------------------------ derivation
    def derive_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return (self.relax.derive_weights(self.alpha_width, None, 1),
                    self.relax.derive_weights(self.alpha_res, None, 1)[0])

    def genotype(self, **meta: Any) -> MobileGenotype:
        ww, rw = self.derive_weights()
        return self.space.genotype([int(i) for i in ww.argmax(-1)], int(rw.argmax()), **meta)

    def arch_summary(self) -> dict:
        with torch.no_grad():
            return {"width": F.softmax(self.alpha_width, -1).tolist(), "resolution": F.softmax(self.alpha_res, -1)[0].tolist()}

    # ------------------------------------------------------------------ cost
    def expected_cost(self, metric: str, *, table=None, predictor=None) -> torch.Tensor:
        """Expected cost of the derived network under the current distribution (differentiable
        in the architecture logits): see :mod:`dnas.costloss`."""
        ww = self.relax.derive_weights(self.alpha_width, None, 1)
        rw = self.relax.derive_weights(self.alpha_res, None, 1)[0]
        if metric == "latency_predictor":
            enc = torch.cat([ww.flatten(), rw]).float().unsqueeze(0)
            if predictor.n_in != enc.shape[1]:
                raise ConfigError(f"latency_predictor: trained on {predictor.n_in} features, this fbnetv2 space encodes {enc.shape[1]}; refit it for this space")
            return predictor(enc).squeeze(0)
        kind = {"params": "params", "macs": "macs", "latency_table": "latency"}[metric]
        per_block, fixed = mobile_cost_tables(self.space, kind, table)  # (R, B, K), (R,)
        per_res = fixed.to(ww) + (per_block.to(ww) * ww.unsqueeze(0)).sum((1, 2))
        return (rw * per_res).sum()


def place_back(f: torch.Tensor, full: int) -> torch.Tensor:
    """Put an ``(N, C, h, h)`` map at spaced positions of an ``(N, C, full, full)`` zero map,
    scaled by ``full^2 / h^2`` so that the spatial mean is unchanged."""
    h = f.shape[-1]
    if h == full:
        return f
    pos = ((torch.arange(h, device=f.device) + 0.5) * full / h).floor().long().clamp_max(full - 1)
    out = f.new_zeros(f.shape[0], f.shape[1], full, full)
    out[:, :, pos.unsqueeze(1), pos.unsqueeze(0)] = f * (full * full / (h * h))
    return out


def extract_subnet(supernet: MobileSupernet, genotype: MobileGenotype) -> MobileNetwork:
    """The evaluation network of ``genotype`` with the supernet's shared weights (the first
    ``hidden`` channels of each block)."""
    net = MobileNetwork(genotype, supernet.space.num_classes, supernet.space.in_channels)
    sd = supernet.state_dict()
    out = {}
    for k, v in net.state_dict().items():
        src = sd[k]
        if src.shape == v.shape:
            out[k] = src.clone()
        elif src.dim() == 0:
            out[k] = src.clone()
        else:
            out[k] = src[tuple(slice(0, n) for n in v.shape)].clone()
    net.load_state_dict(out)
    return net


# ---------------------------------------------------------------------------------- cost tables
def _block_module(ci: int, h: int, co: int, s: int, k: int) -> InvertedResidual:
    return InvertedResidual(ci, h, co, s, k)


class _Head(nn.Module):
    def __init__(self, c: int, n: int):
        super().__init__()
        self.fc = nn.Linear(c, n)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


class _StemAt(nn.Module):
    """Resize + stem: the resolution-dependent fixed part at the network input."""

    def __init__(self, in_channels: int, stem: int, size: int):
        super().__init__()
        self.size = size
        self.stem = _stem(in_channels, stem)

    def forward(self, x):
        return self.stem(resize(x, self.size))


_TABLE_CACHE: dict = {}


def mobile_cost_tables(space: MobileSpace, kind: str, table=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(per_block (R, B, K), fixed (R,))``: cost of block ``b`` at hidden option ``k`` and
    resolution ``r``, and of the stem + head at resolution ``r`` (params/MACs in millions,
    latency in ms). The network cost of a genotype is ``fixed[r] + sum_b per_block[r, b, k_b]``
    exactly for params and MACs."""
    from dnas.cost import count_macs, count_params

    if kind == "latency" and table is None:
        raise ValueError("latency cost tables need a LatencyTable")
    key = (space, kind, None if table is None else table.key)
    if key in _TABLE_CACHE:
        return _TABLE_CACHE[key]
    R, B, K = len(space.resolutions), len(space.blocks), space.num_options
    per = torch.zeros(R, B, K, dtype=torch.float64)
    fixed = torch.zeros(R, dtype=torch.float64)
    items, where = [], []
    for r, size in enumerate(space.resolutions):
        H = size
        for b, (ci, co, s, k, hid) in enumerate(space.blocks):
            for o, h in enumerate(hid):
                mk = (lambda ci=ci, h=h, co=co, s=s, k=k: _block_module(ci, h, co, s, k))
                shape = (ci, H, H)
                if kind == "latency":
                    items.append((f"mbconv|{ci}-{h}-{co}|s{s}k{k}|{H}x{H}|b{table.batch}", mk, shape))
                    where.append((r, b, o))
                else:
                    with torch.device("meta"):
                        m = mk()
                    per[r, b, o] = (count_params(m) if kind == "params" else count_macs(m, shape)) / 1e6
            H = conv_out(H, s)
        head_in = (space.blocks[-1][1], H, H)
        stem_mk = (lambda size=size: _StemAt(space.in_channels, space.stem, size))
        head_mk = (lambda: _Head(space.blocks[-1][1], space.num_classes))
        in_shape = (space.in_channels, space.input_size, space.input_size)
        if kind == "latency":
            items.append((f"mbstem|{space.in_channels}-{space.stem}|{space.input_size}->{size}|b{table.batch}", stem_mk, in_shape))
            where.append((r, -1, 0))
            items.append((f"mbhead|{space.blocks[-1][1]}-{space.num_classes}|{H}x{H}|b{table.batch}", head_mk, head_in))
            where.append((r, -1, 1))
        else:
            for mk, shape in ((stem_mk, in_shape), (head_mk, head_in)):
                with torch.device("meta"):
                    m = mk()
                fixed[r] += (count_params(m) if kind == "params" else count_macs(m, shape)) / 1e6
    if kind == "latency":
        for (r, b, o), v in zip(where, table.lookup(items)):
            if b < 0:
                fixed[r] += v
            else:
                per[r, b, o] = v
    _TABLE_CACHE[key] = (per, fixed)
    return per, fixed


# ---------------------------------------------------------------------------------- registration
def space_from_config(cfg, num_classes: int, in_channels: int, image_size: int | None = None) -> MobileSpace:
    return MobileSpace.make(
        stem=cfg.init_channels, layers=cfg.layers, expansions=tuple(cfg.mobile_expansions),
        resolutions=tuple(cfg.mobile_resolutions), input_size=image_size or cfg.image_size or 32,
        in_channels=in_channels, num_classes=num_classes,
    )


def build_fbnetv2_supernet(cfg, num_classes: int, in_channels: int) -> MobileSupernet:
    from dnas.relax import relaxation_from_config

    return MobileSupernet(space_from_config(cfg, num_classes, in_channels), relaxation_from_config(cfg))


class MobileLatencySpace:
    """Latency-predictor adapter (:meth:`FBNetV2Space.latency_adapter`): encoding =
    per-block one-hot hidden-width option and one-hot resolution (softmax weights in search)."""

    name = "fbnetv2"

    def __init__(self, stem: int = 8, layers: int = 5, expansions: Sequence[float] = (1, 2, 3, 4),
                 resolutions: Sequence[float] = (1.0, 0.75, 0.5), input_size: int = 32, in_channels: int = 3,
                 num_classes: int = 10) -> None:
        self._shape = dict(stem=stem, layers=layers, expansions=list(expansions), resolutions=list(resolutions),
                           input_size=input_size, in_channels=in_channels, num_classes=num_classes)
        self.space = MobileSpace.make(stem, layers, tuple(expansions), tuple(resolutions), input_size, in_channels, num_classes)

    @classmethod
    def from_options(cls, *, channels: int, layers: int, image_size: int, in_channels: int, num_classes: int,
                     **_: Any) -> "MobileLatencySpace":
        return cls(stem=channels, layers=layers, input_size=image_size, in_channels=in_channels, num_classes=num_classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        s = self.space
        return (s.in_channels, s.input_size, s.input_size)

    def shape(self) -> dict:
        return dict(self._shape)

    def _index(self, g: MobileGenotype) -> tuple[list[int], int]:
        s = self.space
        return [blk[4].index(h) for blk, h in zip(s.blocks, g.channels)], s.resolutions.index(g.resolution)

    def sample(self, n: int, seed: int) -> list[MobileGenotype]:
        rng, s = random.Random(seed), self.space
        out, seen = [], set()
        total = s.num_options ** len(s.blocks) * len(s.resolutions)
        if n > total:
            raise ConfigError(f"samples: the space has only {total} networks, asked for {n}")
        while len(out) < n:
            g = s.genotype([rng.randrange(s.num_options) for _ in s.blocks], rng.randrange(len(s.resolutions)))
            if g.hash() not in seen:
                seen.add(g.hash())
                out.append(g)
        return out

    def encode(self, genotypes: Sequence[MobileGenotype]) -> torch.Tensor:
        s = self.space
        rows = []
        for g in genotypes:
            hi, ri = self._index(g)
            w = F.one_hot(torch.tensor(hi), s.num_options).float().flatten()
            rows.append(torch.cat([w, F.one_hot(torch.tensor(ri), len(s.resolutions)).float()]))
        return torch.stack(rows)

    def build(self, g: MobileGenotype) -> nn.Module:
        return MobileNetwork(g, self.space.num_classes, self.space.in_channels)

    def table_estimate(self, genotypes: Sequence[MobileGenotype], table) -> list[float]:
        per, fixed = mobile_cost_tables(self.space, "latency", table)
        out = []
        for g in genotypes:
            hi, ri = self._index(g)
            out.append(float(fixed[ri] + sum(per[ri, b, k] for b, k in enumerate(hi))))
        return out

    def to_dict(self, g: MobileGenotype) -> dict:
        return g.to_dict(with_meta=False)

    def from_dict(self, d: dict) -> MobileGenotype:
        return MobileGenotype.from_dict(d)


def _register() -> None:
    from dnas.models import NETWORKS

    if "fbnetv2" not in NETWORKS:
        NETWORKS.register("fbnetv2", MobileNetwork)


_register()


# ---------------------------------------------------------------------------------- the SearchSpace
from dnas.spaces.base import PIN, SearchSpace, register_space  # noqa: E402


@register_space("fbnetv2")
class FBNetV2Space(SearchSpace):
    """The discrete view of the FBNetV2 space: one hidden-width choice per block and one input
    resolution (``expansions ** layers * resolutions`` networks, every vector valid).

    Architectures are :class:`MobileGenotype` (self-contained: they state the block layout, so
    ``build`` needs no space options). The graph view is a chain stem -> block_1 -> ... ->
    head whose node features are the block's one-hot width choice and stride, plus the one-hot
    resolution on the stem node; ``distance`` counts differing choices. Weight sharing: the
    masked supernet (:class:`MobileSupernet`, relaxation ``fbnetv2``); ``fix_arch`` pins each
    block's width logits and the resolution logits to one candidate, which makes the supernet
    compute exactly the pinned network (the masking tests check this equivalence).
    ``cost`` uses the per-candidate tables of :func:`mobile_cost_tables` (exact for params and
    MACs) rather than building the network.
    """

    relaxations = ("fbnetv2",)

    def __init__(self, stem: int = 8, layers: int = 5, expansions: Sequence[float] = (1, 2, 3, 4),
                 resolutions: Sequence[float] = (1.0, 0.75, 0.5), input_size: int = 32, in_channels: int = 3,
                 num_classes: int = 10) -> None:
        self.space = MobileSpace.make(stem, layers, tuple(expansions), tuple(resolutions), input_size, in_channels,
                                      num_classes)
        self.input_shape = (in_channels, input_size, input_size)
        self._config = dict(init_channels=stem, layers=layers, mobile_expansions=[float(e) for e in expansions],
                            mobile_resolutions=[float(r) for r in resolutions], image_size=input_size)

    def supernet_config(self) -> dict:
        return {"space": "fbnetv2", "relaxation": "fbnetv2", **self._config}

    def latency_adapter(self, options: dict | None = None, **shape: Any) -> "MobileLatencySpace":
        try:
            return MobileLatencySpace.from_options(**options) if options is not None else MobileLatencySpace(**shape)
        except TypeError as e:
            raise ConfigError(f"space fbnetv2: bad latency option ({e})") from None

    # ------------------------------------------------------------------ data
    def parse(self, obj: Any) -> MobileGenotype:
        g = obj if isinstance(obj, MobileGenotype) else load_mobile_genotype(obj)
        self.encode(g)  # raises when g is not a network of this space
        return g

    def read_genotype(self, d: dict) -> MobileGenotype:
        return MobileGenotype.from_dict(d)

    def to_dict(self, arch: MobileGenotype) -> dict:
        return arch.to_dict(with_meta=False)

    def hash(self, arch: MobileGenotype) -> str:
        return arch.hash()

    def describe(self, arch: MobileGenotype) -> list[str]:
        return [f"fbnetv2 hidden widths {arch.channels}, resolution {arch.resolution}/{arch.input_size}"]

    # ------------------------------------------------------------------ categorical view
    @property
    def cardinalities(self) -> tuple[int, ...]:
        return (self.space.num_options,) * len(self.space.blocks) + (len(self.space.resolutions),)

    def encode(self, arch: MobileGenotype) -> list[int]:
        s = self.space
        if (arch.stem, arch.input_size) != (s.stem, s.input_size) or len(arch.blocks) != len(s.blocks):
            raise GenotypeError(f"fbnetv2 genotype: stem {arch.stem}, {len(arch.blocks)} blocks, input {arch.input_size} "
                                f"is not a network of this space (stem {s.stem}, {len(s.blocks)} blocks, input {s.input_size})")
        out = []
        for i, ((_, c_out, st, k, hid), b) in enumerate(zip(s.blocks, arch.blocks)):
            if (c_out, st, k) != b[:3] or b[3] not in hid:
                raise GenotypeError(f"genotype.blocks[{i}]: {list(b)} is not a candidate of this space (hidden widths {list(hid)})")
            out.append(hid.index(b[3]))
        if arch.resolution not in s.resolutions:
            raise GenotypeError(f"genotype.resolution: {arch.resolution} is not a candidate ({list(s.resolutions)})")
        return out + [s.resolutions.index(arch.resolution)]

    def decode(self, vector: Sequence[int]) -> MobileGenotype:
        v = [int(x) for x in vector]
        if len(v) != len(self.cardinalities) or any(not 0 <= x < c for x, c in zip(v, self.cardinalities)):
            raise ValueError(f"fbnetv2 space: vector {v} outside the cardinalities {self.cardinalities}")
        return self.space.genotype(v[:-1], v[-1])

    def sample(self, rng: random.Random) -> MobileGenotype:
        return self.decode([rng.randrange(c) for c in self.cardinalities])

    def graph(self, arch: MobileGenotype):
        import numpy as np

        s, v = self.space, self.encode(arch)
        B, K, R = len(s.blocks), s.num_options, len(s.resolutions)
        n = B + 2
        A = np.zeros((n, n), np.float32)
        for i in range(n - 1):
            A[i, i + 1] = 1.0
        X = np.zeros((n, 2 + K + 1 + R), np.float32)
        X[0, 0] = 1.0
        X[0, 2 + K + 1 + v[-1]] = 1.0
        X[-1, 1] = 1.0
        for b in range(B):
            X[b + 1, 2 + v[b]] = 1.0
            X[b + 1, 2 + K] = float(s.blocks[b][2] == 2)
        return A, X

    # ------------------------------------------------------------------ networks
    def build(self, arch: MobileGenotype, *, num_classes: int | None = None, in_channels: int | None = None,
              **_: Any) -> nn.Module:
        # any valid fbnetv2 genotype builds (it states its own layout), not only this space's
        return MobileNetwork(load_mobile_genotype(arch), num_classes or self.space.num_classes,
                             in_channels or self.space.in_channels)

    def cost(self, arch: MobileGenotype, metric: str = "params", **_: Any) -> float:
        if metric not in ("params", "macs"):
            raise ConfigError(f"cost metric: {metric!r} unknown; choose params or macs")
        per, fixed = mobile_cost_tables(self.space, metric)
        v = self.encode(arch)
        r = v[-1]
        return float(fixed[r] + sum(per[r, b, k] for b, k in enumerate(v[:-1])))

    def supernet(self, cfg: Any, num_classes: int, in_channels: int):
        self.check_relaxation(cfg.relaxation)
        return build_fbnetv2_supernet(cfg, num_classes, in_channels)

    def fix_arch(self, supernet: Any, arch: MobileGenotype) -> None:
        sub = FBNetV2Space.__new__(FBNetV2Space)
        sub.space, sub.input_shape = supernet.space, self.input_shape
        v = sub.encode(arch)
        w = torch.zeros_like(supernet.alpha_width)
        w[torch.arange(len(v) - 1), torch.tensor(v[:-1])] = PIN
        r = torch.zeros_like(supernet.alpha_res)
        r[0, v[-1]] = PIN
        supernet.alpha_width.data.copy_(w)
        supernet.alpha_res.data.copy_(r)
