"""TensorBoard event files next to a run's ``events.jsonl``, so ``tensorboard --logdir RUN``
works. Optional: without the ``tensorboard`` package every function here does nothing.

Two writers share one mapping from an epoch event to scalars (:func:`scalars`):

* the search loop writes live, one set of scalars per epoch (rank 0 only), through
  :func:`open_tensorboard` (``purge_step`` drops the steps a resumed run repeats);
* :func:`export_events` rewrites ``RUN/tb`` from ``events.jsonl`` for runs that have no event
  files yet (training runs, runs made without tensorboard installed); ``dnas report`` calls it.

The JSON-lines log stays the source of truth; the event files are a view of it.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

#: Subdirectory of the run directory that holds the event files.
TB_DIR = "tb"

#: Epoch-event fields written as scalars, by TensorBoard tag.
_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "arch_loss": "loss/arch",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "lr": "schedule/lr",
    "drop_path_prob": "schedule/drop_path_prob",
    "seconds": "time/epoch_seconds",
    "rank_drift": "distributed/rank_drift",
}


def available() -> bool:
    """Whether the tensorboard package (needed by torch's SummaryWriter) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


def scalars(record: dict) -> dict[str, float]:
    """The numeric content of one epoch event, by TensorBoard tag: losses, accuracies, learning
    rate, timing, the architecture-objective terms (``arch_terms/...``) and the collapse-guard
    signals (``guard/...``)."""
    out: dict[str, float] = {}
    for key, tag in _TAGS.items():
        v = _number(record.get(key))
        if v is not None:
            out[tag] = v
    for group in ("arch_terms", "guard", "cost"):
        for k, v in (record.get(group) or {}).items() if isinstance(record.get(group), dict) else ():
            n = _number(v)
            if n is not None:
                out[f"{group}/{k}"] = n
    return out


class EpochWriter:
    """A thin SummaryWriter wrapper that writes :func:`scalars` of an epoch event."""

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def write(self, step: int, record: dict) -> None:
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, global_step=int(step))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(run_dir: str | Path, purge_step: int | None = None) -> EpochWriter | None:
    """A live writer into ``RUN/tb``, or None when tensorboard is not installed."""
    if not available():
        return None
    return EpochWriter(Path(run_dir) / TB_DIR, purge_step=purge_step or None)


def has_event_files(run_dir: str | Path) -> bool:
    d = Path(run_dir) / TB_DIR
    return d.is_dir() and any(p.name.startswith("events.out.tfevents") for p in d.iterdir())


def export_events(run_dir: str | Path, *, force: bool = False) -> Path | None:
    """Write ``RUN/tb`` from ``RUN/events.jsonl`` (all epoch events); skip when event files
    exist and ``force`` is false. Returns the directory, or None without tensorboard or events."""
    from dnas.io import read_jsonl

    run_dir = Path(run_dir)
    events = run_dir / "events.jsonl"
    if not available() or not events.exists():
        return None
    out = run_dir / TB_DIR
    if has_event_files(run_dir) and not force:
        return out
    if out.is_dir():
        for p in out.iterdir():
            if p.name.startswith("events.out.tfevents"):
                p.unlink()
    epochs = [e for e in read_jsonl(events) if e.get("event") == "epoch" and "epoch" in e]
    if not epochs:
        return None
    w = EpochWriter(out)
    try:
        for e in epochs:
            w.write(int(e["epoch"]), e)
    finally:
        w.close()
    return out
