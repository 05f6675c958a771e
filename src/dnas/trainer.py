"""Training a derived architecture from scratch: the DARTS evaluation recipe, resumable.

Recipe (DARTS / PC-DARTS ``train.py``): SGD with momentum and weight decay, cosine annealing
from ``lr`` to ``lr_min`` over the epochs, drop-path probability ramped linearly
(``drop_path_prob * epoch / epochs``), an auxiliary head whose loss is added with weight
``auxiliary_weight``, gradient-norm clipping and optional label smoothing and cutout.

Defaults are sized for a CPU: ``train_genotype(DARTS_V2, TrainConfig())`` trains a C=16,
5-cell network (auxiliary head, drop-path 0.2) on the 5,000-image MNIST subset resized to
16x16 (3,600 train / 400 val / 1,000 test images) for 15 epochs, a few minutes on 2 cores;
:data:`PAPER_CIFAR` holds the paper's CIFAR-10 setting.

A run directory holds::

    config.yaml     the TrainConfig (written first; ``load_train_config`` reads it back)
    genotype.json   the genotype (so ``load_genotype(run_dir)`` works)
    events.jsonl    one line per epoch (train and val metrics -- test metrics when
                    val_fraction is 0 --, lr, drop-path), plus start/resume/end
    checkpoint.pt   model, optimizer, scheduler, epoch, RNG state, config, history (every epoch)
    model.pt        the final weights plus what is needed to rebuild the network
    result.json     the summary (:class:`TrainResult`)

Every file is written atomically and every checkpoint loads with ``torch.load(...,
weights_only=True)`` (only tensors and plain Python values are stored). Batches and
augmentation are seeded by ``(seed, epoch, batch)`` and the torch RNG state (drop-path) is
checkpointed, so a resumed run ends with exactly the weights of an uninterrupted one.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dnas.errors import ConfigError, DivergenceError, DnasError
from dnas.genotype import Genotype, load_genotype
from dnas.run import resolve_device
from dnas.finite import check_finite_model
from dnas.io import append_jsonl, read_jsonl, write_json, write_text
from dnas.manifest import load_torch_checked, save_checked, write_text_checked

CHECKPOINT_FORMAT = "dnas.train.checkpoint"
MODEL_FORMAT = "dnas.train.model"


# --------------------------------------------------------------------------- config
class TrainConfig(BaseModel):
    """Everything a from-scratch training run needs (validated; unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # data
    data: str = Field("mnist", description="built-in name (digits, digits16, mnist) or a dataset path")
    image_size: Optional[int] = Field(16, le=4096, description="resize images to this square size (None or 0 keeps them)")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of the non-test data held out for validation")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share held out for test (ignored if the data has a test split)")
    test_split_from: Optional[str] = Field(None, description="a splits.json (or a run directory holding one) whose test set this run tests on and never trains on; dnas train of a searched genotype sets it to the search's")
    augment: bool = Field(True, description="random crop (and flip for RGB) during training")
    cutout: int = Field(0, ge=0, le=4096, description="cutout hole size in pixels; 0 disables it (DARTS: 16 on CIFAR)")
    # network
    net: str = Field("cifar", description="evaluation network: cifar or imagenet (or any registered network)")
    init_channels: int = Field(16, ge=2, le=4096)
    layers: int = Field(5, ge=1, le=1000)
    auxiliary: bool = True
    auxiliary_weight: float = Field(0.4, ge=0.0, le=1e3)
    drop_path_prob: float = Field(0.2, ge=0.0, lt=1.0)
    # optimisation
    epochs: int = Field(15, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=1 << 20)
    lr: float = Field(0.05, gt=0.0, le=1e12)
    lr_min: float = Field(0.0, ge=0.0, le=1e3)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(3e-4, ge=0.0, le=1e3)
    grad_clip: float = Field(5.0, gt=0.0, le=1e12)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    # run
    seed: int = Field(0, ge=0, le=2**63 - 1)
    device: str = "auto"
    threads: Optional[int] = Field(None, ge=1, le=4096, description="torch CPU threads; None keeps torch's default")
    channels_last: bool = Field(True, description="channels-last memory format (about 1.3-1.5x faster on CPU here)")

    @field_validator("net")
    @classmethod
    def _known_net(cls, v: str) -> str:
        from dnas.models import NETWORKS

        if v not in NETWORKS:
            raise ValueError(f"unknown network {v!r}; choose one of: {', '.join(NETWORKS.names())}")
        return v

    @field_validator("image_size")
    @classmethod
    def _size(cls, v: Optional[int]) -> Optional[int]:
        if v is not None and v != 0 and v < 4:
            raise ValueError(f"must be >= 4 (or 0/None to keep the native size), got {v}")
        return v or None

    @field_validator("init_channels")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"must be even (factorized reduce halves it), got {v}")
        return v

    @model_validator(mode="after")
    def _lr_order(self) -> "TrainConfig":
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        return self


#: The DARTS CIFAR-10 evaluation setting (600 epochs; for a GPU, not for the defaults).
PAPER_CIFAR: dict[str, Any] = dict(
    image_size=None, val_fraction=0.0, init_channels=36, layers=20, auxiliary=True, auxiliary_weight=0.4,
    drop_path_prob=0.2, cutout=16, epochs=600, batch_size=96, lr=0.025, lr_min=0.0, momentum=0.9,
    weight_decay=3e-4, grad_clip=5.0,
)

#: Fields that may differ between a run and its resumption (they do not change the math).
_RESUMABLE_CHANGES = {"device", "threads", "channels_last"}


def _format_validation_error(e: ValidationError, where: str) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "config"
    msg = err.get("msg", "invalid value").removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = f"unknown field; allowed: {', '.join(TrainConfig.model_fields)}"
    return f"{where}{loc}: {msg}"


def train_config(**fields: Any) -> TrainConfig:
    """Build a :class:`TrainConfig`, turning validation errors into a one-line ConfigError.

    ``None`` values are dropped (so CLI options left unset keep the defaults).
    """
    try:
        return TrainConfig(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, "train config: ")) from None


def load_train_config(path: str | os.PathLike, **overrides: Any) -> TrainConfig:
    """Read a YAML or JSON train config file, then apply ``overrides`` (None values ignored)."""
    from dnas.errors import DnasError
    from dnas.io import loads_yaml, read_text

    p = Path(path)
    try:
        data = loads_yaml(read_text(p, "config"), str(p))
    except DnasError as e:
        raise ConfigError(str(e)) from None
    data = {} if data is None else data
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConfigError(f"{p}: expected a mapping of config fields, got {type(data).__name__}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, f"{p}: ")) from None


# --------------------------------------------------------------------------- result
@dataclass
class TrainResult:
    """Summary of a finished run (also written to ``result.json``). Accuracies are fractions."""

    test_accuracy: float
    test_loss: float
    best_val_accuracy: Optional[float]
    best_epoch: Optional[int]
    final_val_accuracy: Optional[float]
    epochs: int
    params: int
    aux_params: int
    macs: int
    seconds: float
    genotype_hash: str
    out_dir: str
    checkpoint: str
    model_path: str
    history: list[dict] = field(default_factory=list)
    #: True when ``--resume`` found the run already finished and changed nothing (not saved).
    already_finished: bool = False

    def to_dict(self, with_history: bool = True) -> dict[str, Any]:
        d = asdict(self)
        d.pop("already_finished")
        if not with_history:
            d.pop("history")
        return d


# --------------------------------------------------------------------------- helpers
def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def build_from_config(genotype: Genotype, config: TrainConfig, num_classes: int, in_channels: int) -> nn.Module:
    """The network a TrainConfig describes (drop-path starts at 0; the trainer ramps it)."""
    from dnas.models import build_network

    return build_network(
        genotype,
        net=config.net,
        C=config.init_channels,
        layers=config.layers,
        num_classes=num_classes,
        in_channels=in_channels,
        auxiliary=config.auxiliary,
        drop_path_prob=0.0,
    )


@torch.no_grad()
def evaluate(model: nn.Module, batches, device: torch.device, channels_last: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction) of ``model`` over ``batches``, in eval mode."""
    was_training = model.training
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    try:
        for xb, yb in batches:
            xb, yb = xb.to(device), yb.to(device)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            logits = model(xb)
            total_loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
            n += len(yb)
    finally:
        model.train(was_training)
    if n == 0:
        return float("nan"), float("nan")
    return total_loss / n, correct / n


class _Progress:
    """Rich progress bars (epochs and steps) or nothing."""

    def __init__(self, enabled: bool, epochs: int, steps: int, start_epoch: int) -> None:
        self.bar = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        )
        self.epoch_task = self.bar.add_task("epochs", total=epochs, completed=start_epoch, info="")
        self.step_task = self.bar.add_task("steps", total=steps, info="")

    def __enter__(self) -> "_Progress":
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def step(self, info: str) -> None:
        if self.bar is not None:
            self.bar.update(self.step_task, advance=1, info=info)

    def new_epoch(self) -> None:
        if self.bar is not None:
            self.bar.reset(self.step_task, info="")

    def end_epoch(self, record: dict) -> None:
        if self.bar is None:
            return
        part = "val" if "val_acc" in record else "test"
        msg = (f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} acc {record['train_acc']:.4f}, "
               f"{part} loss {record[part + '_loss']:.4f} acc {record[part + '_acc']:.4f}")
        self.bar.update(self.epoch_task, advance=1, info=msg)
        self.bar.console.print(msg)


# --------------------------------------------------------------------------- the run
def _train_epoch(model: nn.Module, batches, optimizer: torch.optim.Optimizer, criterion: nn.Module,
                 config: TrainConfig, epoch: int, lr: float, events_path: Path, bar: _Progress) -> tuple[float, float]:
    """One pass over the training batches; returns mean loss and accuracy. Stops the run with
    :class:`DivergenceError` at the first non-finite loss, before it poisons the weights."""
    loss_sum, correct, seen = 0.0, 0, 0
    for step, (xb, yb) in enumerate(batches):
        if config.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        logits, logits_aux = model(xb)
        loss = criterion(logits, yb)
        if logits_aux is not None and config.auxiliary_weight > 0:
            loss = loss + config.auxiliary_weight * criterion(logits_aux, yb)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            append_jsonl(events_path, {"event": "diverged", "epoch": epoch + 1, "step": step + 1,
                                       "loss": str(loss_value), "lr": lr, "time": time.time()})
            raise DivergenceError(
                f"training diverged: loss is {loss_value} at epoch {epoch + 1}, step {step + 1} "
                f"(lr {lr:.4g}); lower lr (config.lr / --lr) or grad_clip and retry"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        loss_sum += loss_value * len(yb)
        correct += int((logits.detach().argmax(1) == yb).sum())
        seen += len(yb)
        bar.step(f"loss {loss_sum / seen:.4f}")
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def _check_resume_config(saved: dict, config: TrainConfig, ckpt: Path) -> None:
    current = config.model_dump(mode="json")
    diff = sorted(k for k in set(saved) | set(current) if k not in _RESUMABLE_CHANGES and saved.get(k) != current.get(k))
    if diff:
        k = diff[0]
        raise ConfigError(
            f"{ckpt}: cannot resume with a different config ({', '.join(diff)}; e.g. {k} was "
            f"{saved.get(k)!r}, now {current.get(k)!r}); use the original config or a new out_dir"
        )


def train_genotype(
    genotype: Genotype | str,
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike = "runs/train",
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train the evaluation network of ``genotype`` from scratch and test it.

    ``resume=True`` continues from ``out_dir/checkpoint.pt`` (starting fresh when there is
    none) and reproduces the uninterrupted run exactly; the config must match the saved one
    (``device``/``threads`` may change). ``on_epoch(record)`` is called after each epoch's
    checkpoint is written (for callers that log or stop early by raising).
    Raises :class:`DivergenceError` when the loss becomes NaN/inf. ``config.threads`` applies
    for the duration of the call only.
    """
    genotype = load_genotype(genotype)
    config = config if config is not None else TrainConfig()
    out = Path(out_dir)
    ckpt_path, result_path = out / "checkpoint.pt", out / "result.json"

    ckpt: dict | None = None
    if resume and not ckpt_path.exists() and any(e.get("event") == "epoch" for e in read_jsonl(out / "events.jsonl")):
        raise DnasError(f"{ckpt_path}: missing, but the run logged finished epochs; restore the checkpoint or "
                        "start a new run")
    if resume and ckpt_path.exists():
        ckpt = load_torch_checked(ckpt_path, "checkpoint")
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or not isinstance(ckpt.get("config"), dict):
            raise DnasError(f"{ckpt_path}: not a dnas training checkpoint; pass the out_dir of a `dnas train` run")
        _check_resume_config(ckpt["config"], config, ckpt_path)
        try:
            saved_geno = Genotype.from_dict(ckpt["genotype"])
        except (KeyError, TypeError) as e:
            raise DnasError(f"{ckpt_path}: not a dnas training checkpoint ({type(e).__name__}); start a new run") from None
        if saved_geno.hash() != genotype.hash():
            raise ConfigError(f"{ckpt_path}: was trained with genotype {saved_geno.hash()}, got {genotype.hash()}; "
                              "pass the original genotype or a new out_dir")
    elif not resume and (ckpt_path.exists() or result_path.exists()):
        raise DnasError(f"{out}: already holds a training run; pass resume=True (--resume) to continue it "
                        "or choose another out_dir")

    threads_before = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _run(genotype, config, out, ckpt, progress, on_epoch)
    finally:
        torch.set_num_threads(threads_before)


def _run(genotype: Genotype, config: TrainConfig, out: Path, ckpt: dict | None, progress: bool,
         on_epoch: Callable[[dict], None] | None) -> TrainResult:
    from dnas.data import Batches, load_dataset, split_indices, splits_from_indices
    from dnas.splits import read_splits, reused_test_indices, splits_record, write_splits
    from dnas.transforms import default_eval_transform, default_train_transform

    ckpt_path, model_path = out / "checkpoint.pt", out / "model.pt"
    events_path, result_path = out / "events.jsonl", out / "result.json"
    device = resolve_device(config.device)
    t_start = time.perf_counter()

    # data: splits are a pure function of the seed, so a resumed run sees the same ones
    data = load_dataset(config.data, image_size=config.image_size)
    test = None
    if config.test_split_from:  # the search's held-out test set: test on it, train on the rest
        test = reused_test_indices(read_splits(config.test_split_from), data, config.test_split_from)
    idx = split_indices(data, seed=config.seed, val_fraction=config.val_fraction, test_fraction=config.test_fraction, test=test)
    splits = splits_from_indices(data, idx)
    train_x, train_y = splits.train if config.val_fraction > 0 else splits.trainval
    eval_t = default_eval_transform(data)
    train_t = default_train_transform(data, augment=config.augment, cutout=config.cutout)
    train_batches = Batches(train_x.to(device), train_y.to(device), config.batch_size, shuffle=True,
                            seed=config.seed, drop_last=len(train_y) > config.batch_size, transform=train_t)
    eval_bs = max(config.batch_size, 256)
    val_batches = (Batches(splits.val[0].to(device), splits.val[1].to(device), eval_bs, shuffle=False, transform=eval_t)
                   if config.val_fraction > 0 else None)
    test_batches = Batches(splits.test[0].to(device), splits.test[1].to(device), eval_bs, shuffle=False, transform=eval_t)

    # model and optimiser (built under the seed so initial weights are reproducible)
    torch.manual_seed(config.seed)
    model = build_from_config(genotype, config, data.num_classes, data.in_channels)
    from dnas.cost import count_aux_params, count_macs, count_params

    params, aux_params = count_params(model), count_aux_params(model)
    macs = count_macs(model, (data.in_channels, data.image_size, data.image_size))
    model = model.to(device)
    from dnas.ops import channels_last_safe

    if config.channels_last and not channels_last_safe(model):
        config = config.model_copy(update={"channels_last": False})  # tiny strided 1x1 convs: see channels_last_safe
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.lr_min)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    history: list[dict] = []
    best_val, best_epoch, start_epoch = -1.0, None, 0
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise DnasError(f"{ckpt_path}: checkpoint does not fit this network ({type(e).__name__}); "
                            "it belongs to another config — start a new run") from None
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epoch"])
        best_val = float(ckpt["best_val"])
        best_epoch = ckpt["best_epoch"]
        _set_rng_state(ckpt["rng"])
        # events written after the last checkpoint belong to the lost epoch: rewrite the log
        kept = [e for e in read_jsonl(events_path) if e.get("event") != "epoch" or e.get("epoch", 0) <= start_epoch]
        write_text(events_path, "".join(json.dumps(e) + "\n" for e in kept))
        append_jsonl(events_path, {"event": "resume", "epoch": start_epoch, "time": time.time()})
    else:
        out.mkdir(parents=True, exist_ok=True)
        for stale in (events_path, ckpt_path):  # resume=True on a dir without a checkpoint
            stale.unlink(missing_ok=True)
        import yaml

        genotype.save(out / "genotype.json")  # before config.yaml: a run with a config always has its genotype
        write_splits(out, splits_record(config.data, config.image_size, data, idx, seed=config.seed, kind="train",
                                        test_from=config.test_split_from))
        write_text_checked(out / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        append_jsonl(events_path, {"event": "start", "genotype": genotype.hash(), "params": params,
                                   "aux_params": aux_params, "macs": macs, "device": str(device),
                                   "train_size": len(train_y), "time": time.time()})

    with _Progress(progress, config.epochs, len(train_batches), start_epoch) as bar:
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            model.drop_path_prob = config.drop_path_prob * epoch / config.epochs
            model.train()
            train_batches.set_epoch(epoch)
            bar.new_epoch()
            train_loss, train_acc = _train_epoch(model, train_batches, optimizer, criterion, config, epoch, lr,
                                                 events_path, bar)
            scheduler.step()
            record: dict[str, Any] = {
                "event": "epoch", "epoch": epoch + 1, "lr": lr, "drop_path_prob": model.drop_path_prob,
                "train_loss": train_loss, "train_acc": train_acc,
            }
            if val_batches is not None:
                record["val_loss"], record["val_acc"] = evaluate(model, val_batches, device, config.channels_last)
                if record["val_acc"] > best_val:
                    best_val, best_epoch = record["val_acc"], epoch + 1
            else:  # no validation split (the paper setting): report the test set each epoch
                record["test_loss"], record["test_acc"] = evaluate(model, test_batches, device, config.channels_last)
            record["seconds"] = round(time.perf_counter() - t0, 3)
            check_finite_model(model, f"training epoch {epoch + 1}", "lower --lr or --grad-clip",
                               train_loss=train_loss, val_loss=record.get("val_loss"), test_loss=record.get("test_loss"))
            history.append({k: v for k, v in record.items() if k != "event"})
            save_checked(ckpt_path, {
                "format": CHECKPOINT_FORMAT, "version": 1, "epoch": epoch + 1,
                "model": _state_dict_cpu(model), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": _rng_state(),
                "config": config.model_dump(mode="json"), "genotype": genotype.to_dict(),
                "history": history, "best_val": best_val, "best_epoch": best_epoch,
            })
            append_jsonl(events_path, {**record, "time": time.time()})
            bar.end_epoch(record)
            if on_epoch is not None:
                on_epoch(dict(record))

    test_loss, test_acc = evaluate(model, test_batches, device, config.channels_last)
    check_finite_model(model, "trained model", "lower --lr or --grad-clip", test_loss=test_loss)
    save_checked(model_path, {
        "format": MODEL_FORMAT, "version": 1, "state_dict": _state_dict_cpu(model),
        "genotype": genotype.to_dict(), "config": config.model_dump(mode="json"),
        "num_classes": data.num_classes, "in_channels": data.in_channels, "image_size": data.image_size,
    })
    result = TrainResult(
        test_accuracy=test_acc, test_loss=test_loss,
        best_val_accuracy=best_val if best_epoch is not None else None, best_epoch=best_epoch,
        final_val_accuracy=history[-1].get("val_acc") if history else None,
        epochs=config.epochs, params=params, aux_params=aux_params, macs=macs,
        seconds=round(time.perf_counter() - t_start, 3), genotype_hash=genotype.hash(),
        out_dir=str(out), checkpoint=str(ckpt_path), model_path=str(model_path), history=history,
    )
    write_json(result_path, result.to_dict())
    append_jsonl(events_path, {"event": "end", "test_acc": test_acc, "test_loss": test_loss, "time": time.time()})
    return result


def load_trained(path: str | os.PathLike, *, device: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained network (eval mode) from a run directory or its ``model.pt``.

    Returns the model and the saved metadata (``config``, ``genotype``, ``num_classes``,
    ``in_channels``, ``image_size``), e.g. to build an example input for export.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.exists():
        raise DnasError(f"{p}: no trained model; run `dnas train` first or pass a run directory holding model.pt")
    saved = load_torch_checked(p, "model")
    if not isinstance(saved, dict) or saved.get("format") != MODEL_FORMAT:
        raise DnasError(f"{p}: not a dnas trained model (expected format {MODEL_FORMAT!r})")
    try:
        config = TrainConfig(**saved["config"])
        model = build_from_config(Genotype.from_dict(saved["genotype"]), config, saved["num_classes"], saved["in_channels"])
        model.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise DnasError(f"{p}: model file does not match its network ({type(e).__name__}); it is not a dnas model") from None
    model.to(resolve_device(device)).eval()
    meta = {k: v for k, v in saved.items() if k != "state_dict"}
    return model, meta
