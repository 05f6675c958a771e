"""Trial executors: a crashed trial is retried and its result kept; order is preserved."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dnas.errors import ConfigError
from dnas.trials import RayExecutor, SerialExecutor, make_executor


def _square_after_failures(x: int, marker_dir: str, failures: int, how: str) -> int:
    """Fail ``failures`` times for this ``x`` (by raising or by killing the worker), then succeed.

    The attempt count lives in files so that it survives the death of a Ray worker process.
    """
    d = Path(marker_dir)
    attempt = len(list(d.glob(f"{x}-*"))) + 1
    (d / f"{x}-{attempt}").touch()
    if attempt <= failures:
        if how == "kill":
            os._exit(1)  # the worker process dies without a Python exception
        raise RuntimeError(f"trial {x} crashed on attempt {attempt}")
    return x * x


def test_serial_retries_a_trial_that_raises_once_and_keeps_its_result(tmp_path):
    ex = SerialExecutor(max_retries=2)
    args = [(x, str(tmp_path), 1 if x == 3 else 0, "raise") for x in range(5)]
    res = ex.map(_square_after_failures, args)
    assert [r.value for r in res] == [0, 1, 4, 9, 16]
    assert [r.attempts for r in res] == [1, 1, 1, 2, 1]
    assert all(r.ok for r in res)


def test_serial_reports_a_trial_that_keeps_failing_instead_of_losing_it(tmp_path):
    ex = SerialExecutor(max_retries=1)
    res = ex.map(_square_after_failures, [(2, str(tmp_path), 0, "raise"), (7, str(tmp_path), 5, "raise")])
    assert res[0].ok and res[0].value == 4
    assert not res[1].ok and res[1].attempts == 2 and "crashed on attempt 2" in res[1].error
    assert [r.index for r in res] == [0, 1]


def test_make_executor_kinds():
    assert isinstance(make_executor("serial"), SerialExecutor)
    assert isinstance(make_executor("ray", num_cpus=1), RayExecutor)  # lazy: Ray starts on first map
    assert isinstance(make_executor(address="auto"), RayExecutor)
    with pytest.raises(ConfigError, match="executor"):
        make_executor("dask")


def test_ray_retries_raised_and_killed_trials(tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ray>=2.9')")
    ex = RayExecutor(num_cpus=2, max_retries=2, object_store_memory=80 * 1024**2)
    try:
        try:
            ex._ensure()
        except Exception as e:  # a sandbox without shared memory or sockets
            pytest.skip(f"ray could not start here: {type(e).__name__}: {e}")
        # the workers cannot import this test module, so ship its functions by value
        import sys

        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        args = [(2, str(tmp_path), 0, "raise"), (3, str(tmp_path), 1, "raise"), (4, str(tmp_path), 1, "kill"),
                (5, str(tmp_path), 9, "raise")]
        res = ex.map(_square_after_failures, args)
    finally:
        ex.close()
    assert not ray.is_initialized()
    assert [r.value for r in res[:3]] == [4, 9, 16]
    assert [r.attempts for r in res[:3]] == [1, 2, 2]  # the killed worker's trial ran again too
    assert not res[3].ok and res[3].attempts == 3 and "crashed on attempt 3" in res[3].error
