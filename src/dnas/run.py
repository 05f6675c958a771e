"""A run directory: the one place a search or training run keeps its state.

Layout::

    RUN/config.yaml      resolved config (written first, read back by --resume)
    RUN/events.jsonl     one JSON object per line: epochs, evaluations, the end
    RUN/checkpoint.pt    latest full state (atomic; loads with weights_only=True)
    RUN/genotype.json    the result, written at the end
    RUN/result.json      summary metrics

Every file is written atomically; a run killed at any point resumes from its last checkpoint.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dnas.errors import ConfigError, DnasError
from dnas.io import append_jsonl, read_jsonl, save_torch, write_json, write_text


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # paths
    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def genotype(self) -> Path:
        return self.path / "genotype.json"

    @property
    def result(self) -> Path:
        return self.path / "result.json"

    def create(self, exist_ok: bool = False) -> "RunDir":
        # Under torchrun every rank creates the run; rank 0 alone checks it is new (the others
        # would race with rank 0's first writes) and alone writes to it.
        exist_ok = exist_ok or os.environ.get("RANK", "0") != "0"
        if self.path.exists() and any(self.path.iterdir()) and not exist_ok:
            raise DnasError(
                f"run directory {self.path} already exists and is not empty; pass --resume {self.path} to continue it or choose another --out"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def require_existing(self) -> "RunDir":
        if not self.config.exists():
            raise DnasError(f"--resume {self.path}: no config.yaml there; pass the directory of an earlier run")
        return self

    # events
    def log(self, event: str, **fields: Any) -> None:
        append_jsonl(self.events, {"event": event, "time": round(time.time(), 3), **fields})

    def read_events(self, event: str | None = None) -> list[dict]:
        ev = read_jsonl(self.events)
        return [e for e in ev if event is None or e.get("event") == event]

    def truncate_events(self, before_epoch: int) -> None:
        """Drop epoch events at or after ``before_epoch`` (written after the last checkpoint by a
        run that was then killed), so a resumed run's log has each epoch once."""
        kept = [e for e in read_jsonl(self.events) if not ("epoch" in e and e["epoch"] >= before_epoch and e.get("event") != "start")]
        import json

        write_text(self.events, "".join(json.dumps(e) + "\n" for e in kept))

    # checkpoints
    def save_checkpoint(self, state: dict) -> None:
        save_torch(self.checkpoint, state)

    def load_checkpoint(self) -> dict | None:
        if not self.checkpoint.exists():
            return None
        try:
            return torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as e:  # a checkpoint we did not write, or a damaged disk
            raise DnasError(f"{self.checkpoint}: cannot load checkpoint ({type(e).__name__}); delete it to restart the run") from None

    def write_result(self, result: dict) -> None:
        write_json(self.result, result)


def rng_state() -> dict:
    """All RNG states as tensors / plain values (loadable with weights_only=True)."""
    return {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
        **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: {name!r} is not a torch device; use auto, cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is available; use --device cpu")
    return dev
