"""Latency measured on this device: single modules, whole networks, and a per-op lookup table.

Why the protocol looks like this: the machine this runs on is shared and noisy (a 2-core CPU
with other jobs; one and the same network measured 15.7 and 19.7 ms median in two runs a few
seconds apart). Absolute numbers drift with load, so

* every timing is a **median** over ``repeats`` calls after ``warmup`` untimed calls;
* several modules are measured **interleaved** (round-robin, one call of each per round, in a
  seeded shuffled order), so load changes during a measurement hit all of them alike and
  their *ratios* stay meaningful - this is what a predictor or a table needs;
* torch runs on a fixed number of threads (``threads``, default 1) during a measurement,
  because thread-pool contention is the largest source of variance on a busy CPU;
* on a CPU with one thread the clock is the measuring **thread's CPU time**
  (``time.thread_time``), not wall time: with the load average at 9 on 2 cores, two
  interleaved sessions of the same 30 networks differed by 29% on average in wall-clock
  medians but by 2.5% in thread-CPU-time medians. Thread CPU time is the latency the network
  has on an idle core, which is what a latency model should learn; other tenants' share of the
  core is not a property of the architecture. ``clock="wall"`` measures wall time instead
  (always used on CUDA and with several threads, where the work leaves the calling thread);
* on CUDA, ``torch.cuda.synchronize`` brackets every call (kernels are asynchronous).

The :class:`LatencyTable` caches per-op latencies on disk, one JSON file per device key
(device type, CPU/GPU model and thread count), keyed by op name and input shape, under
``$DNAS_CACHE_DIR`` or ``~/.cache/dnas``. A second lookup of the same entries measures
nothing; entries missing from the file are measured together (interleaved) and merged into
the file with an atomic write.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn as nn

from dnas.errors import ConfigError, DataError
from dnas.io import write_json


# ---------------------------------------------------------------------------------- device
def default_cache_dir() -> Path:
    """``$DNAS_CACHE_DIR`` or ``~/.cache/dnas``."""
    env = os.environ.get("DNAS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "dnas"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def as_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is available; use cpu")
    return dev


CLOCKS = ("auto", "thread", "wall")


def resolve_clock(clock: str, device: torch.device, threads: int | None) -> str:
    """``thread`` (CPU time of the calling thread) for single-threaded CPU runs, else ``wall``."""
    if clock not in CLOCKS:
        raise ConfigError(f"clock: one of {', '.join(CLOCKS)}, got {clock!r}")
    single = device.type == "cpu" and (threads or torch.get_num_threads()) == 1
    if clock == "thread" and not single:
        raise ConfigError("clock: 'thread' needs a CPU device and threads=1 (other threads' work would be missed); use wall")
    if clock == "auto":
        return "thread" if single else "wall"
    return clock


def device_key(device: str | torch.device | None = "cpu", threads: int | None = 1, clock: str = "auto") -> str:
    """A file-name-safe key naming what a latency depends on: device model, threads, clock."""
    dev = as_device(device)
    clock = resolve_clock(clock, dev, threads)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        key = f"cuda-{name}-{clock}"
    else:
        key = f"cpu-{_cpu_name()}-t{threads or torch.get_num_threads()}-{clock}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads (None: unchanged), then restore."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------- timing
def time_interleaved(
    fns: Sequence[Callable[[], Any]],
    *,
    warmup: int = 3,
    repeats: int = 15,
    device: str | torch.device = "cpu",
    seed: int = 0,
    clock: str = "wall",
) -> list[float]:
    """Median milliseconds of each of ``fns``, measured round-robin.

    Each function is called ``warmup`` times untimed, then ``repeats`` rounds follow; in every
    round each function runs once, in a freshly shuffled (seeded) order, so slow phases of a
    noisy machine are spread over all of them. ``clock`` is ``wall`` or ``thread``.
    """
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"latency: repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    dev = as_device(device)
    now = time.thread_time if clock == "thread" else time.perf_counter
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    for fn in fns:
        for _ in range(warmup):
            fn()
    sync()
    times: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    rng = random.Random(seed)
    for _ in range(repeats):
        rng.shuffle(order)
        for i in order:
            sync()
            t0 = now()
            fns[i]()
            sync()
            times[i].append((now() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def _runner(module: nn.Module, input_shape: Sequence[int], device: torch.device, batch: int) -> Callable[[], Any]:
    module = module.to(device).eval()
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (batch, *shape)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)

    def run() -> Any:
        with torch.inference_mode():
            return module(x)

    return run


def measure_modules(
    modules: Sequence[nn.Module],
    input_shapes: Sequence[Sequence[int]],
    *,
    device: str | torch.device = "cpu",
    warmup: int = 3,
    repeats: int = 15,
    threads: int | None = 1,
    batch: int = 1,
    seed: int = 0,
    clock: str = "auto",
) -> list[float]:
    """Median eval-mode forward latency (ms) of each module at its input shape (``(C, H, W)``
    gets batch ``batch``), measured interleaved (see the module docstring for ``clock``)."""
    if len(modules) != len(input_shapes):
        raise ConfigError("latency: need one input shape per module")
    dev = as_device(device)
    clock = resolve_clock(clock, dev, threads)
    with torch_threads(threads if dev.type == "cpu" else None):
        fns = [_runner(m, s, dev, batch) for m, s in zip(modules, input_shapes)]
        return time_interleaved(fns, warmup=warmup, repeats=repeats, device=dev, seed=seed, clock=clock)


def measure_module(module: nn.Module, input_shape: Sequence[int], **kw: Any) -> float:
    """Median eval-mode forward latency (ms) of one module (or whole network)."""
    return measure_modules([module], [input_shape], **kw)[0]


network_latency = measure_module


# ---------------------------------------------------------------------------------- table
def op_key(op: str, C: int, H: int, W: int, stride: int, batch: int = 1) -> str:
    """Table key of an ``OPS`` op at input ``(batch, C, H, W)`` with ``stride``."""
    return f"{op}|C{C}|{H}x{W}|s{stride}|b{batch}"


class LatencyTable:
    """Per-op latencies of one device, cached on disk.

    ``lookup(items)`` takes ``(key, build, input_shape)`` triples (``build()`` returns the
    module to time); cached keys are returned as stored, the missing ones are measured in one
    interleaved session, added and saved. :attr:`measured` counts the entries this instance
    measured (a fully cached lookup leaves it unchanged).
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        *,
        cache_dir: str | os.PathLike | None = None,
        threads: int | None = 1,
        warmup: int = 5,
        repeats: int = 21,
        batch: int = 1,
        seed: int = 0,
        clock: str = "auto",
    ) -> None:
        self.device = as_device(device)
        self.threads, self.warmup, self.repeats, self.batch, self.seed = threads, warmup, repeats, batch, seed
        self.clock = resolve_clock(clock, self.device, threads)
        self.key = device_key(self.device, threads, self.clock)
        self.path = Path(cache_dir or default_cache_dir()) / "latency" / f"{self.key}.json"
        self.entries: dict[str, float] = self._read()
        self.measured = 0

    def _read(self) -> dict[str, float]:
        if not self.path.exists():
            return {}
        from dnas.errors import DnasError
        from dnas.io import read_json

        try:
            data = read_json(self.path, "latency table")
            return {str(k): float(v) for k, v in data.get("entries", {}).items()}
        except (DnasError, AttributeError, TypeError, ValueError):
            raise DataError(f"latency table {self.path}: unreadable JSON; delete the file to re-measure") from None

    def save(self) -> Path:
        # Merge with what another process may have written meanwhile; our values win.
        merged = {**(self._read() if self.path.exists() else {}), **self.entries}
        self.entries = merged
        meta = {"device_key": self.key, "threads": self.threads, "warmup": self.warmup, "repeats": self.repeats,
                "batch": self.batch, "clock": self.clock, "statistic": "median ms, interleaved"}
        return write_json(self.path, {"format": "dnas.latency_table", "meta": meta, "entries": dict(sorted(merged.items()))})

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, items: Sequence[tuple[str, Callable[[], nn.Module], Sequence[int]]]) -> list[float]:
        missing: dict[str, tuple[Callable[[], nn.Module], Sequence[int]]] = {}
        for key, build, shape in items:
            if key not in self.entries and key not in missing:
                missing[key] = (build, shape)
        if missing:
            keys = list(missing)
            mods = [missing[k][0]() for k in keys]
            ms = measure_modules(
                mods, [missing[k][1] for k in keys], device=self.device, warmup=self.warmup,
                repeats=self.repeats, threads=self.threads, batch=self.batch, seed=self.seed, clock=self.clock,
            )
            self.entries.update(zip(keys, ms))
            self.measured += len(keys)
            self.save()
        return [self.entries[k] for k, _, _ in items]

    def ops(self, specs: Sequence[tuple[str, int, int, int, int]]) -> list[float]:
        """Latencies of ``OPS`` ops given as ``(op, C, H, W, stride)``."""
        from dnas.ops import make_op

        items = [
            (op_key(op, C, H, W, s, self.batch), (lambda op=op, C=C, s=s: make_op(op, C, s, True)), (C, H, W))
            for op, C, H, W, s in specs
        ]
        return self.lookup(items)

    def op(self, op: str, C: int, H: int, W: int, stride: int) -> float:
        return self.ops([(op, C, H, W, stride)])[0]
