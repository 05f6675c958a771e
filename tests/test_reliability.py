"""Run directories that cannot be lost, mixed or poisoned (issue 14): the seven data-loss cases,
the lock, integrity manifests, strict resume, finite checks and log/temporary-file hygiene."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dnas.api as api
from conftest import assert_one_error_line

TABLE = "tabular:nb201_cifar10"
SEARCH = dict(data="digits", image_size=8, init_channels=4, layers=3, epochs=2, batch_size=64, max_samples=160,
              warmup_epochs=1, guard="off", threads=1)
TRAIN = ["--data", "digits", "--image-size", "8", "--init-channels", "4", "--layers", "2", "--batch-size", "128",
         "--threads", "1"]


def snapshot(d: Path) -> dict[str, str]:
    """Every file under ``d`` with the hash of its bytes and its mode (to prove nothing changed)."""
    out = {}
    for p in sorted(d.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(d))] = hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """RUN: a finished tiny bilevel search."""
    out = tmp_path_factory.mktemp("run") / "RUN"
    api.search(out=out, **SEARCH)
    return out


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory) -> Path:
    """TRUN: a finished tiny training run."""
    from dnas.cli import main

    out = tmp_path_factory.mktemp("trun") / "TRUN"
    assert main(["train", "DARTS_V2", *TRAIN, "--epochs", "2", "--out", str(out), "-q"]) == 0
    return out


def copy(src: Path, tmp_path: Path, name: str = "copy") -> Path:
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------- the seven data-loss cases
def test_1_a_discrete_search_never_overwrites_an_existing_run(run_dir, tmp_path, cli):
    run = copy(run_dir, tmp_path)
    before = snapshot(run)
    code, _, err = cli("search", "--space", "nb201", "--strategy", "random", "--evaluator", TABLE, "--budget", "5", "--out", run)
    assert_one_error_line(code, err, "--resume")
    assert snapshot(run) == before


def _hold(path: Path, how: str) -> subprocess.Popen:
    """Another process that owns ``path`` (a new run, or a resumed one) until killed."""
    code = (f"import sys, time; from dnas.run import RunDir; r = RunDir({str(path)!r}).{how}(); "
            "print('held', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.stdout.readline().strip() == "held"
    return p


def test_2_a_second_writer_fails_naming_the_holder(train_dir, tmp_path, cli):
    d = tmp_path / "D"
    holder = _hold(d, "create")
    try:
        for args in (["search", "--out", d, "--data", "digits", "--epochs", "1"],
                     ["search", "--space", "nb201", "--evaluator", TABLE, "--budget", "3", "--out", d],
                     ["train", "DARTS_V2", "--data", "digits", "--epochs", "1", "--out", d]):
            code, _, err = cli(*args)
            assert_one_error_line(code, err, f"pid {holder.pid}")
        assert sorted(os.listdir(d)) == [".lock"]
    finally:
        holder.kill()
        holder.wait()
    trun = copy(train_dir, tmp_path, "T")
    holder = _hold(trun, "open")
    try:
        before = snapshot(trun)
        code, _, err = cli("train", "--resume", trun)
        assert_one_error_line(code, err, f"pid {holder.pid}")
        assert snapshot(trun) == before
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("content", ["", "- data\n- digits\n", "{}\n", "TRAIN"])
def test_3_an_empty_or_foreign_config_is_refused_on_resume(content, run_dir, train_dir, tmp_path, cli):
    run = copy(run_dir, tmp_path)
    text = (train_dir / "config.yaml").read_text() if content == "TRAIN" else content
    (run / "config.yaml").write_text(text)
    (run / "result.json").unlink()  # an unfinished run: resume would train on
    before = snapshot(run)
    code, _, err = cli("search", "--resume", run)
    assert_one_error_line(code, err, "config.yaml")
    assert snapshot(run) == before


def test_4_evolve_on_missing_data_fails_in_one_line(tmp_path, cli):
    code, _, err = cli("evolve", "--data", tmp_path / "nonexistent", "--blocks", "DARTS_V2", "--out", tmp_path / "E")
    assert_one_error_line(code, err, "nonexistent")
    assert not (tmp_path / "E").exists()


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)
    path.write_bytes(bytes(data))


def test_5_damaged_checkpoint_bytes_are_detected(train_dir, run_dir, tmp_path, cli):
    trun = copy(train_dir, tmp_path, "T")
    (trun / "result.json").unlink()  # not finished: today's code would train on from the damaged weights
    _damage(trun / "checkpoint.pt")
    before = snapshot(trun)
    code, _, err = cli("train", "--resume", trun)
    assert_one_error_line(code, err, "checkpoint.pt", "damaged")
    assert snapshot(trun) == before
    run = copy(run_dir, tmp_path, "R")
    _damage(run / "checkpoint.pt")
    before = snapshot(run)
    for args in (["search", "--resume", run], ["export", run, "--format", "state-dict"], ["report", run]):
        code, _, err = cli(*args)
        assert_one_error_line(code, err, "checkpoint.pt", "damaged")
        assert snapshot(run) == before
    t2 = copy(train_dir, tmp_path, "T2")
    _damage(t2 / "model.pt")
    code, _, err = cli("export", t2, "--format", "torchscript", "--out", tmp_path / "m.ts")
    assert_one_error_line(code, err, "model.pt", "damaged")
    assert not (tmp_path / "m.ts").exists()


def test_6_training_never_exits_0_with_a_non_finite_model(tmp_path, cli):
    out = tmp_path / "T"
    code, _, err = cli("train", "DARTS_V2", *TRAIN, "--epochs", "3", "--lr", "1e4", "--grad-clip", "1e12", "--out", out)
    assert_one_error_line(code, err)
    assert "finite" in err or "diverged" in err
    assert not (out / "model.pt").exists() and not (out / "result.json").exists()
    if (out / "checkpoint.pt").exists():  # the last checkpoint is the last finite one
        state = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_6_overflowing_batchnorm_statistics_stop_training_with_the_last_finite_checkpoint(tmp_path, monkeypatch):
    """A finite loss with ``inf`` BN running statistics (what a huge lr with a loose clip gives on
    bigger networks) must stop the run; the checkpoint stays the previous, finite epoch."""
    import dnas.trainer as trainer
    from dnas.errors import DivergenceError

    real = trainer._train_epoch

    def overflowing(model, *args, **kw):
        out = real(model, *args, **kw)
        if args[4] == 1:  # the second epoch: its BN statistics overflow
            bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
            bn.running_var.fill_(float("inf"))
        return out

    monkeypatch.setattr(trainer, "_train_epoch", overflowing)
    cfg = trainer.train_config(data="digits", image_size=8, init_channels=4, layers=2, batch_size=128, epochs=3, threads=1)
    with pytest.raises(DivergenceError, match="training epoch 2: not finite: .*running_var"):
        trainer.train_genotype("DARTS_V2", cfg, tmp_path / "T", progress=False)
    ckpt = torch.load(tmp_path / "T" / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and not (tmp_path / "T" / "model.pt").exists()
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())


def test_6_a_search_never_checkpoints_a_non_finite_epoch(tmp_path, cli):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr: 1.0e+5\ngrad_clip: 1.0e+12\narch_lr: 1.0e+3\n")
    out = tmp_path / "S"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SEARCH.items() if k not in ("guard",)]
    code, _, err = cli("search", "--config", cfg, *args, "--epochs", "3", "--out", out)
    assert_one_error_line(code, err, "lr")
    assert "--lr" not in err  # dnas search has no --lr flag
    assert not (out / "genotype.json").exists()
    if (out / "checkpoint.pt").exists():
        state = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())
        code, _, err = cli("export", out, "--format", "state-dict")
        assert code == 0  # what export writes is finite


def test_7_a_tabular_search_resumes_after_a_kill(tmp_path, cli):
    args = ["search", "--space", "nb201", "--strategy", "evolution", "--evaluator", TABLE, "--budget", "20", "--seed", "1", "--json"]
    code, ref, _ = cli(*args, "--out", tmp_path / "ref")
    assert code == 0
    run = tmp_path / "cut"
    assert cli(*args[:-4], "8", "--seed", "1", "--out", run)[0] == 0  # a shorter run = one killed after 8 queries
    (run / "result.json").unlink()
    cfg = (run / "config.yaml").read_text().replace("budget: 8", "budget: 20")
    from dnas.manifest import write_text_checked

    write_text_checked(run / "config.yaml", cfg)
    code, out, err = cli("search", "--resume", run, "--json")
    assert code == 0, err
    assert {k: v for k, v in json.loads(out).items() if k != "run_dir"} == {k: v for k, v in json.loads(ref).items() if k != "run_dir"}


# ----------------------------------------------------------------- strict resume and hygiene
def test_resuming_a_finished_run_is_a_no_op_that_says_so(run_dir, train_dir, tmp_path, cli):
    for src, cmd in ((run_dir, "search"), (train_dir, "train")):
        run = copy(src, tmp_path, cmd)
        before = snapshot(run)
        code, out, _ = cli(cmd, "--resume", run)
        assert code == 0 and "already finished" in out
        assert snapshot(run) == before


def test_flags_that_conflict_with_a_resumed_run_are_refused(train_dir, run_dir, tmp_path, cli):
    trun = copy(train_dir, tmp_path, "T")
    before = snapshot(trun)
    for args, needle in ((["--epochs", "30"], "--epochs"), (["--lr", "0.2"], "--lr"), (["DARTS_V1"], "GENOTYPE")):
        code, _, err = cli("train", "--resume", trun, *args)
        assert_one_error_line(code, err, needle)
    assert snapshot(trun) == before
    run = copy(run_dir, tmp_path, "R")
    for args in (["--space", "nb201"], ["--epochs", "5"], ["--out", tmp_path / "x"]):
        code, _, err = cli("search", "--resume", run, *args)
        assert_one_error_line(code, err)


def test_a_missing_checkpoint_is_an_error_unless_no_epoch_was_reached(run_dir, tmp_path, cli):
    run = copy(run_dir, tmp_path)
    (run / "result.json").unlink()
    (run / "checkpoint.pt").unlink()
    code, _, err = cli("search", "--resume", run)
    assert_one_error_line(code, err, "checkpoint.pt")
    # a run killed before its first checkpoint restarts and drops its stale lines
    from dnas.io import read_jsonl

    fresh = copy(run_dir, tmp_path, "fresh")
    for f in ("result.json", "checkpoint.pt", "genotype.json"):
        (fresh / f).unlink()
    kept = [e for e in read_jsonl(fresh / "events.jsonl") if e["event"] == "start"]
    (fresh / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in kept) + '{"event": "epo')
    assert cli("search", "--resume", fresh, "-q")[0] == 0
    events = read_jsonl(fresh / "events.jsonl")
    assert [e["event"] for e in events].count("start") == 1 and [e["epoch"] for e in events if e["event"] == "epoch"] == [0, 1]
    assert json.loads((fresh / "genotype.json").read_text())["normal"] == json.loads((run_dir / "genotype.json").read_text())["normal"]


def test_torn_log_line_and_stray_temporaries_are_cleaned_on_resume(tmp_path, cli):
    args = ["search", "--space", "nb201", "--strategy", "random", "--evaluator", TABLE, "--seed", "2"]
    assert cli(*args, "--budget", "6", "--out", tmp_path / "ref", "-q")[0] == 0
    run = tmp_path / "cut"
    assert cli(*args, "--budget", "3", "--out", run, "-q")[0] == 0
    with open(run / "events.jsonl", "a") as fh:
        fh.write('{"event": "query", "qu')  # a kill mid-append
    (run / ".result.json.abc123.tmp").write_text("{")  # a kill mid atomic write
    code, out, err = cli("search", "--resume", run, "--budget", "6", "-q")
    assert code == 0, err
    assert not (run / ".result.json.abc123.tmp").exists()
    lines = (run / "events.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)
    ref = json.loads((tmp_path / "ref" / "result.json").read_text())
    got = json.loads((run / "result.json").read_text())
    assert got["history"] == ref["history"]


def test_failed_starts_leave_nothing_behind_and_modes_are_consistent(tmp_path, cli):
    out = tmp_path / "R"
    code, _, err = cli("search", "--data", tmp_path / "missing.npz", "--out", out)
    assert_one_error_line(code, err)
    assert not out.exists()
    out.mkdir()
    code, _, err = cli("search", "--space", "nb201", "--evaluator", "tabular:" + str(tmp_path / "none.json"), "--budget", "3", "--out", out)
    assert_one_error_line(code, err)
    assert os.listdir(out) == []  # an existing empty folder stays (empty)
    assert cli("search", "--space", "nb201", "--evaluator", TABLE, "--budget", "3", "--out", out, "-q")[0] == 0
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert len(set(modes.values())) == 1, modes
    assert ".lock" not in modes


def test_every_strategy_stops_when_every_trial_fails_alike(tmp_path):
    from dnas.errors import DnasError
    from dnas.evaluators.base import EvalResult
    from dnas.strategies.discrete import run_discrete_search

    class Broken:
        def evaluate(self, arch, budget=None) -> EvalResult:
            raise OSError("disk unplugged")

    with pytest.raises(DnasError, match="all .* trials failed with the same error: OSError: disk unplugged"):
        run_discrete_search(space="nb201", strategy="bohb", evaluator=Broken(), budget=30, seed=0, max_retries=0)
