"""A run directory: the one place a search or training run keeps its state.

Layout::

    RUN/config.yaml      resolved config (written first, read back by --resume)
    RUN/events.jsonl     one JSON object per line: epochs, evaluations, the end
    RUN/checkpoint.pt    latest full state (atomic; loads with weights_only=True)
    RUN/genotype.json    the result, written at the end
    RUN/result.json      summary metrics
    RUN/manifest.json    SHA-256 of every file a resume trusts (checkpoints, models, config.yaml)
    RUN/.lock            held (flock) by the one process that owns the run; holds its pid

Every file is written atomically; a run killed at any point resumes from its last checkpoint.
"""
from __future__ import annotations

import fcntl
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dnas.errors import ConfigError, DnasError
from dnas.io import append_jsonl, read_jsonl, remove_stray_temporaries, repair_jsonl, write_json, write_text
from dnas.manifest import MANIFEST, load_torch_checked, read_manifest, save_checked, verify, write_text_checked

#: Files that mark a run as having made progress worth keeping (see :meth:`RunDir.committed`).
PROGRESS_FILES = ("checkpoint.pt", "checkpoint.json", "state.json", "model.pt", "result.json")
#: Bookkeeping files that do not make a directory "non-empty" for ``--out``.
LOCK = ".lock"


def _is_rank0() -> bool:
    # Under torchrun every rank runs the command; rank 0 alone owns (locks, writes) the run.
    return os.environ.get("RANK", "0") == "0"


class RunDir:
    """A run directory owned by one process at a time.

    :meth:`create` (a new run) refuses a non-empty directory and a path that is a file;
    :meth:`open` (``--resume``) needs a config.yaml there. Both take an exclusive lock
    (``flock`` on ``RUN/.lock``, which holds the owner's pid) for the life of the process or
    until :meth:`release`, repair a torn last log line and delete stray temporaries. Use it as
    a context manager (``with RunDir(p).create() as run:``): a fresh run that fails before it
    made any progress is removed again, so a failed start leaves nothing behind."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._made_dir = False
        self.fresh = False

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

    # ownership
    def _check_not_file(self, flag: str) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{flag}: {self.path} is a file, not a directory; pass a directory path")
        for parent in self.path.parents:
            if parent.exists() and not parent.is_dir():
                raise ConfigError(f"{flag}: {parent} is a file, so {self.path} cannot be a directory; pass another path")

    def create(self, exist_ok: bool = False) -> "RunDir":
        """Claim a new run directory: it must not exist or be empty (``--out``)."""
        self._check_not_file("--out")
        if not _is_rank0():
            self.path.mkdir(parents=True, exist_ok=True)
            return self
        if self.path.is_dir() and not exist_ok and not self._unstarted([f for f in self.path.iterdir() if f.name != LOCK]):
            raise self._not_empty()  # checked before the lock too, so a user's folder gets no .lock file
        self._made_dir = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--out: cannot create {self.path} ({e.strerror or type(e).__name__}); pass a writable path") from None
        self.acquire()
        existing = [f for f in self.path.iterdir() if f.name != LOCK]
        if existing and not exist_ok:  # re-checked under the lock: another process may have started here
            if not self._unstarted(existing):
                self.release()
                raise self._not_empty()
            for f in existing:  # a start killed before its config was written: only our bookkeeping
                f.unlink(missing_ok=True)
            existing = []
        self.fresh = not existing
        return self

    def _not_empty(self) -> DnasError:
        return DnasError(f"--out: run directory {self.path} already exists and is not empty; pass --resume {self.path} "
                         "to continue it or choose another --out")

    @staticmethod
    def _unstarted(entries: list[Path]) -> bool:
        """Whether ``entries`` are only what a start killed before writing config.yaml can leave:
        the manifest, the genotype of a training run, and temporaries. Such a directory is reused
        by a new run; anything else (a user's files, a started run) is never touched."""
        return all(f.is_file() and (f.name in (MANIFEST, "genotype.json") or (f.name.startswith(".") and f.name.endswith(".tmp")))
                   for f in entries)

    def open(self) -> "RunDir":
        """Claim an existing run (``--resume``): lock it, repair its log, drop stray temporaries."""
        self._check_not_file("--resume")
        if not self.path.is_dir():
            raise DnasError(f"--resume {self.path}: no such run directory; pass the directory of an earlier run")
        if not self.config.exists():
            raise DnasError(f"--resume {self.path}: no config.yaml there; pass the directory of an earlier run")
        if _is_rank0():
            self.acquire()
            try:
                self.verify()  # before anything is repaired or rewritten: a damaged run is left as it is
            except BaseException:
                self.release()
                raise
            remove_stray_temporaries(self.path)
            for log in self.path.glob("*.jsonl"):
                repair_jsonl(log)
        return self

    def verify(self) -> None:
        """Check every file the manifest records (checkpoints, models, config) against its
        checksum; one line naming the first damaged one."""
        for name in read_manifest(self.path)["files"]:
            if (self.path / name).exists():  # absent: a first write killed before its rename (resume decides)
                verify(self.path / name, name)

    def require_existing(self) -> "RunDir":
        """Kept for callers that only read a run (report, export): the config must be there."""
        self._check_not_file("run directory")
        if not self.config.exists():
            raise DnasError(f"--resume {self.path}: no config.yaml there; pass the directory of an earlier run")
        return self

    def acquire(self) -> None:
        """Take the run's exclusive lock, or fail in one line naming the holder's pid."""
        if self._lock_fd is not None:
            return
        lock = self.path / LOCK
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                finally:
                    os.close(fd)
                raise DnasError(f"{self.path}: run directory is in use by another dnas process (pid {holder}); "
                                "wait for it to finish or stop it, or use another --out") from None
            try:  # the previous owner may have unlinked the file between our open and flock
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._lock_fd = fd
            return

    def release(self) -> None:
        if self._lock_fd is None:
            return
        try:
            (self.path / LOCK).unlink(missing_ok=True)
        finally:
            os.close(self._lock_fd)
            self._lock_fd = None

    def committed(self) -> bool:
        """Whether the run made progress that a resume can use (a checkpoint, a result, or an
        event past its start)."""
        if any((self.path / f).exists() for f in PROGRESS_FILES):
            return True
        try:
            return any(e.get("event") not in ("start",) for e in read_jsonl(self.events))
        except DnasError:
            return True

    def discard(self) -> None:
        """Remove what a failed fresh start wrote (the directory too, if this run made it)."""
        if not self.fresh or not self.path.is_dir():
            return
        if self._made_dir:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for f in self.path.iterdir():
            if f.name == LOCK:
                continue
            shutil.rmtree(f, ignore_errors=True) if f.is_dir() else f.unlink(missing_ok=True)

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and self.fresh and _is_rank0() and not self.committed():
                self.discard()
        finally:
            self.release()

    # config
    def save_config_text(self, text: str) -> None:
        """Write config.yaml with its checksum, so resume can tell it from an edited or foreign file."""
        write_text_checked(self.config, text)

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

    def clear_events(self) -> None:
        """A resumed run that never reached its first checkpoint restarts: its old lines go."""
        self.events.unlink(missing_ok=True)

    # checkpoints
    def save_checkpoint(self, state: dict) -> None:
        save_checked(self.checkpoint, state)

    def load_checkpoint(self) -> dict | None:
        """The verified checkpoint, or ``None`` when there is none; a damaged, unrecorded or
        foreign file is one line (and nothing is touched)."""
        if not self.checkpoint.exists():
            return None
        ckpt = load_torch_checked(self.checkpoint, "checkpoint")
        if not isinstance(ckpt, dict) or "model" not in ckpt or "epoch" not in ckpt:
            raise DnasError(f"{self.checkpoint}: not a dnas search checkpoint; pass the directory of a dnas search run")
        return ckpt

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
