"""Run a batch of independent trials (architecture evaluations) serially or in parallel via Ray.

A search strategy hands an executor a function and a list of argument tuples and gets back one
:class:`TrialResult` per tuple, in the same order. A trial that raises, or whose worker process
dies, is run again up to ``max_retries`` times; if it keeps failing its result still comes back,
with ``error`` set, so a search can record it (BOHB counts it as a loss of +inf, as HpBandSter
does) instead of silently losing it.

:class:`SerialExecutor` runs in-process and is what tests and CI use (Ray takes seconds to start).
:class:`RayExecutor` starts a local Ray instance by default (``ray.init(num_cpus=...,
include_dashboard=False, log_to_driver=False)``) or joins a cluster with ``address=``
(``"auto"`` or ``"ray://host:10001"``). Ray's own task retries are switched off so that both
executors count attempts the same way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from dnas.errors import ConfigError


@dataclass
class TrialResult:
    """The outcome of one trial: ``value`` on success, else ``error`` (the last failure)."""

    index: int
    value: Any = None
    error: str | None = None
    attempts: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(Protocol):
    """What a search needs from an executor."""

    max_retries: int

    def map(self, fn: Callable[..., Any], args_list: Sequence[tuple]) -> list[TrialResult]:
        """Run ``fn(*args)`` for every tuple; results come back in input order."""
        ...

    def close(self) -> None: ...


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


class SerialExecutor:
    """Runs trials one after another in this process, retrying a failing one."""

    def __init__(self, max_retries: int = 2) -> None:
        if max_retries < 0:
            raise ConfigError("max_retries: must be >= 0")
        self.max_retries = max_retries

    def map(self, fn: Callable[..., Any], args_list: Sequence[tuple]) -> list[TrialResult]:
        out = []
        for i, args in enumerate(args_list):
            res = TrialResult(index=i)
            start = time.perf_counter()
            while res.attempts <= self.max_retries:
                res.attempts += 1
                try:
                    res.value, res.error = fn(*args), None
                    break
                except Exception as exc:  # a crashed trial is retried, then reported, never lost
                    res.error = _describe(exc)
            res.seconds = time.perf_counter() - start
            out.append(res)
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> "SerialExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run_trial(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(*args)


class RayExecutor:
    """Runs each trial as a Ray task; failed or lost tasks are resubmitted up to ``max_retries``.

    ``address=None`` starts a private local Ray with ``num_cpus`` CPUs (all by default);
    otherwise it connects to that cluster. ``cpus_per_trial`` is the Ray resource request of one
    trial. Ray is imported and started on first use, so building the executor is cheap.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        cpus_per_trial: float = 1.0,
        max_retries: int = 2,
        object_store_memory: int | None = None,
    ) -> None:
        if max_retries < 0:
            raise ConfigError("max_retries: must be >= 0")
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_trial = cpus_per_trial
        self.max_retries = max_retries
        self.object_store_memory = object_store_memory
        self._started = False
        self._remote = None

    def _ensure(self):
        try:
            import ray
        except ImportError:
            raise ConfigError("executor: Ray is not installed; pip install 'ray>=2.9' or use the serial executor") from None
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False)
                if self.num_cpus is not None:
                    kwargs["num_cpus"] = self.num_cpus
                if self.object_store_memory is not None:
                    kwargs["object_store_memory"] = self.object_store_memory
                ray.init(**kwargs)
            self._started = True
        if self._remote is None:
            # Ray retries are off: the loop below counts attempts for exceptions and crashes alike.
            self._remote = ray.remote(_run_trial).options(num_cpus=self.cpus_per_trial, max_retries=0)
        return ray

    def map(self, fn: Callable[..., Any], args_list: Sequence[tuple]) -> list[TrialResult]:
        ray = self._ensure()
        results = [TrialResult(index=i) for i in range(len(args_list))]
        fn_ref = ray.put(fn)
        started: dict[int, float] = {}
        pending: dict[Any, int] = {}

        def submit(i: int) -> None:
            results[i].attempts += 1
            started.setdefault(i, time.perf_counter())
            pending[self._remote.remote(fn_ref, tuple(args_list[i]))] = i

        for i in range(len(args_list)):
            submit(i)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    results[i].value, results[i].error = ray.get(ref), None
                except Exception as exc:  # RayTaskError (trial raised) or WorkerCrashedError (killed)
                    cause = getattr(exc, "cause", None)
                    results[i].error = _describe(cause) if isinstance(cause, BaseException) else _describe(exc).splitlines()[0]
                    if results[i].attempts <= self.max_retries:
                        submit(i)
                        continue
                results[i].seconds = time.perf_counter() - started[i]
        return results

    def close(self) -> None:
        """Shut Ray down if this executor started it (a joined cluster is left running)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
            self._remote = None

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_executor(
    kind: str = "serial",
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    max_retries: int = 2,
) -> Executor:
    """``"serial"`` or ``"ray"``; giving ``address`` implies Ray (the CLI's ``--ray-address``)."""
    if address is not None or kind == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus, max_retries=max_retries)
    if kind == "serial":
        return SerialExecutor(max_retries=max_retries)
    raise ConfigError(f"executor: unknown kind {kind!r}; choose 'serial' or 'ray'")


__all__ = ["TrialResult", "Executor", "SerialExecutor", "RayExecutor", "make_executor"]
