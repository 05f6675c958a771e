"""Data-parallel supernet search with ``torch.distributed``.

How a multi-rank search stays equal to the single-process one:

* **Global batch.** ``batch_size`` is the *global* batch. Every rank iterates the same seeded
  batch order as a single process and keeps its own contiguous slice of each batch
  (:class:`dnas.searchdata.ShardedBatches`), so N ranks see exactly the samples one process
  would, and the learning rates need no scaling. (Per-rank batch = ``batch_size / N``.)
* **Gradients.** Each rank's loss is a mean over its slice, so the gradient of the global
  batch is ``sum_r (n_r / N) * grad_r``: :class:`GradSync` scales each rank's gradient by its
  share and all-reduces the sum, for the weights *and* the architecture parameters (and, for
  second order, for the virtual-step gradient, the validation gradient and the Hessian term).
  All ranks receive the same reduced tensor and run the same optimizer step on the same state,
  so the weights and the architecture parameters stay bitwise identical on every rank, and every
  rank derives the same genotype. This is checked after every epoch (``rank_drift`` in the epoch
  event) and again at the end by the launcher.
* **BatchNorm** normalises with the statistics of the rank's slice, not of the global batch;
  this (and the float summation order of the all-reduce) is the only difference from a single
  process. Running statistics are averaged over the ranks after every epoch. SyncBatchNorm is
  not used: torch supports it on GPU only, and a DARTS supernet has a BatchNorm in every
  candidate op, i.e. hundreds of extra all-gathers per step.
* **Files.** Rank 0 writes the config, events, checkpoints, TensorBoard files and the result;
  on resume every rank reads the same checkpoint, and rank 0's state is broadcast at the start.

Launch: ``dnas search --nproc N`` (or ``nproc: N`` in the config) spawns N local ranks with
:func:`launch`; under ``torchrun`` the ranks come from the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). Backend: ``nccl`` when the
device is CUDA (rank ``r`` uses ``cuda:LOCAL_RANK``), ``gloo`` on CPU.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.distributed as tdist

from dnas.errors import DnasError

#: Environment variables a launcher (torchrun, :func:`launch`) sets for each rank.
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

#: How long a collective may wait for a missing rank before failing (a crashed peer).
TIMEOUT = datetime.timedelta(minutes=10)


def launched() -> bool:
    """True inside a process started by a launcher (torchrun or :func:`launch`)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise DnasError(f"environment: {name} is not set; start the ranks with torchrun or dnas search --nproc N")
        return default
    try:
        return int(value)
    except ValueError:
        raise DnasError(f"environment: {name}={value!r} is not an integer; check the launcher's settings") from None


@dataclass
class Dist:
    """This process's place in the group; every method is a no-op for a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -------------------------------------------------------------- collectives
    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; for small things like a decision or a record)."""
        if not self.enabled:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite ``tensors`` in place with rank 0's values."""
        if not self.enabled:
            return
        for t in tensors:
            tdist.broadcast(t.data, src=0)

    def weighted_sum(self, tensors: Sequence[torch.Tensor | None], weight: float,
                     like: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor | None]:
        """``sum_r weight_r * tensors_r`` over the ranks, as new tensors (one flat all-reduce).

        ``None`` entries (gradients of ops a single-path relaxation did not sample) count as
        zeros and stay ``None`` only when they are ``None`` on every rank (presence counts
        travel in the same all-reduce), so SGD skips exactly the parameters no rank used.
        ``like`` gives the shapes of ``None`` entries; pass it at call sites where a gradient
        may be ``None`` on *some* rank (every rank must take the same path)."""
        if not self.enabled:
            return list(tensors)
        missing = [t is None for t in tensors]
        if like is None and any(missing):
            raise ValueError("weighted_sum: some tensors are None; pass `like` (the same on every rank)")
        if like is not None:
            tensors = [torch.zeros_like(l) if t is None else t for t, l in zip(tensors, like)]
        parts = [t.reshape(-1) for t in tensors]
        total = sum(p.numel() for p in parts)
        if like is not None:  # presence counts ride along in the same all-reduce
            parts.append(torch.tensor([0.0 if m else 1.0 for m in missing], dtype=parts[0].dtype, device=parts[0].device))
        flat = torch.cat(parts)
        flat[:total].mul_(weight)
        tdist.all_reduce(flat)
        keep = (flat[total:] > 0).tolist() if like is not None else [True] * len(tensors)
        out, i = [], 0
        for t, k in zip(tensors, keep):
            out.append(flat[i : i + t.numel()].view_as(t) if k else None)
            i += t.numel()
        return out

    def sum_floats(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of a few numbers over the ranks (epoch counters)."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._comm_device())
        tdist.all_reduce(t)
        return t.tolist()

    def average_buffers_(self, module: torch.nn.Module) -> None:
        """Average floating-point buffers (BatchNorm running statistics) over the ranks, so all
        ranks evaluate and checkpoint the same model."""
        if not self.enabled:
            return
        bufs = [b for b in module.buffers() if b.is_floating_point()]
        if bufs:
            avg = self.weighted_sum(bufs, 1.0 / self.world_size)
            with torch.no_grad():
                for b, a in zip(bufs, avg):
                    b.copy_(a)

    def drift(self, tensors: Sequence[torch.Tensor]) -> float:
        """Largest absolute difference between any rank's ``tensors`` and rank 0's (0.0 when the
        ranks are in sync, which :class:`GradSync` guarantees)."""
        if not self.enabled:
            return 0.0
        with torch.no_grad():
            mine = torch.cat([t.detach().reshape(-1).float() for t in tensors])
            ref = mine.clone()
            tdist.broadcast(ref, src=0)
            d = (mine - ref).abs().max().reshape(1).double()
            tdist.all_reduce(d, op=tdist.ReduceOp.MAX)
        return float(d.item())

    # -------------------------------------------------------------- placement
    def device(self, device: torch.device) -> torch.device:
        """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per rank)."""
        if self.enabled and device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def close(self) -> None:
        """Wait for every rank, then leave the group (only if :func:`setup` created it)."""
        if self.enabled and self.owns_group and tdist.is_initialized():
            tdist.barrier()
            tdist.destroy_process_group()
            self.owns_group = False


def setup(device: torch.device) -> Dist:
    """Join the process group described by the environment (torchrun-style), or return a
    single-process :class:`Dist` outside a launcher. ``device`` picks the backend."""
    if not launched():
        return Dist()
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    local = _env_int("LOCAL_RANK", rank)
    if world <= 1:
        return Dist()
    backend = "nccl" if device.type == "cuda" else "gloo"
    owns = False
    if not tdist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise DnasError(f"environment: {name} is not set; start the ranks with torchrun or dnas search --nproc N")
        if backend == "nccl":
            torch.cuda.set_device(local)
        tdist.init_process_group(backend, rank=rank, world_size=world, timeout=TIMEOUT)
        owns = True
    else:
        backend = tdist.get_backend()
    return Dist(rank, world, local, backend, owns)


class GradSync:
    """Turns per-rank gradients into the global-batch gradient: each rank's gradient is
    weighted by its share of the global batch and the weighted gradients are summed.

    The bilevel loop sets the shares of the current train and val batches with
    :meth:`set_shares` before each step; :class:`~dnas.strategies.bilevel.Architect` calls
    :meth:`val` on architecture gradients and the loop calls :meth:`train` on weight gradients."""

    def __init__(self, dist: Dist) -> None:
        self.dist = dist
        self.train_share = 1.0
        self.val_share = 1.0

    def set_shares(self, train: float, val: float) -> None:
        self.train_share, self.val_share = float(train), float(val)

    def train(self, grads: Sequence[torch.Tensor | None], like: Sequence[torch.Tensor] | None = None) -> list:
        """Global gradient of a loss averaged over the train batch (``like``: the parameters,
        at call sites where a gradient may be ``None``)."""
        return self.dist.weighted_sum(grads, self.train_share, like)

    def val(self, grads: Sequence[torch.Tensor | None], like: Sequence[torch.Tensor] | None = None) -> list:
        """Global gradient of a loss averaged over the val batch."""
        return self.dist.weighted_sum(grads, self.val_share, like)


def tensor_digest(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 of the tensors' raw bytes: equal digests mean bitwise-equal tensors."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------ local launcher


def free_port() -> int:
    """A TCP port that was free a moment ago (for the rendezvous of local ranks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_entry(rank: int, nproc: int, port: int, fn: Callable, args: tuple, queue) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    if "OMP_NUM_THREADS" not in os.environ:  # share the cores instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    try:
        result = fn(*args)
    except DnasError as e:
        queue.put((rank, "error", type(e).__name__, str(e)))
        raise
    queue.put((rank, "ok", result))


def launch(nproc: int, fn: Callable, args: tuple = ()) -> list[Any]:
    """Run ``fn(*args)`` in ``nproc`` new local processes that see torchrun's environment
    variables (a torchrun equivalent for one machine); returns each rank's return value, by
    rank. ``fn`` must be importable (it is pickled into spawned processes). A
    :class:`~dnas.errors.DnasError` raised on any rank is raised here with the same class and
    message; other failures propagate with the rank's traceback."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise DnasError(f"nproc: must be at least 1, got {nproc}")
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    results: dict[int, Any] = {}
    errors: dict[int, tuple[str, str]] = {}

    def drain() -> None:
        while not queue.empty():
            item = queue.get()
            if item[1] == "ok":
                results[item[0]] = item[2]
            else:
                errors[item[0]] = (item[2], item[3])

    procs = mp.start_processes(_rank_entry, args=(nproc, free_port(), fn, args, queue), nprocs=nproc,
                               join=False, start_method="spawn")
    try:
        while not procs.join(timeout=0.2):
            drain()
    except (mp.ProcessRaisedException, mp.ProcessExitedException):
        drain()
        if errors:
            rank = min(errors)
            name, message = errors[rank]
            import dnas.errors as errs

            cls = getattr(errs, name, DnasError)
            raise (cls if isinstance(cls, type) and issubclass(cls, DnasError) else DnasError)(message) from None
        raise
    drain()
    missing = [r for r in range(nproc) if r not in results]
    if missing:
        raise DnasError(f"ranks {missing} exited without a result; see their output above")
    return [results[r] for r in range(nproc)]
