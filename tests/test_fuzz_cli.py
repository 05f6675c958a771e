"""Fuzz the command line with bad input: every case must exit 2 with exactly one ``error:`` line,
no traceback, and write nothing (the inputs and run directories are byte-for-byte unchanged and
no ``--out`` directory appears).

The cases are generated here: malformed and wrongly shaped YAML / JSON configs, genotypes,
records and blocks files; binary files; huge, negative and non-finite values; paths of the wrong
kind; damaged run directories. They run in-process through :func:`dnas.cli.main` (the real entry
point), which keeps hundreds of cases within seconds."""
from __future__ import annotations

import copy as _copy
import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from conftest import assert_one_error_line
from dnas.genotype import PUBLISHED

TABLE = "tabular:nb201_cifar10"
HUGE = str(2**70)
DEEP_LIST = "[" * 100_000 + "]" * 100_000
DEEP_MAP_YAML = "".join("  " * i + "a:\n" for i in range(400)) + "  " * 400 + "b: 1\n"
DEEP_JSON_MAP = '{"a":' * 5000 + "1" + "}" * 5000


def _binary(seed: int, n: int = 600) -> bytes:
    rng = random.Random(seed)
    data = bytes(rng.randrange(256) for _ in range(n))
    return b"\xff\xfe" + data  # never valid UTF-8


NOT_UTF8 = {
    "latin1": "data: caf\xe9\n".encode("latin-1"),
    "utf16": "epochs: 3\n".encode("utf-16"),
    "lone-continuation": b"epochs: 3\n\x80\n",
    "bad-lead": b"\xc3\x28: 1\n",
    "nul-high": b"\x00\xff\x00\xff",
    **{f"binary{i}": _binary(i) for i in range(6)},
}

# ------------------------------------------------------------------------------- configs
#: Bad for SearchConfig and TrainConfig alike (never a valid config: a valid one would train).
COMMON_CONFIGS = {
    "list": "- data\n- digits\n",
    "scalar": "42\n",
    "text": "just some words\n",
    "unclosed-list": "epochs: [1, 2\n",
    "nested-colon": "a: b: c\n",
    "unterminated": "data: 'digits\n",
    "brace": "{\n",
    "bracket": "]\n",
    "tab-indent": "epochs:\n\t- 3\n",
    "reserved": "epochs: @3\n",
    "python-tag": "epochs: !!python/object/apply:os.system ['true']\n",
    "deep-list": DEEP_LIST,
    "deep-map": DEEP_MAP_YAML,
    "int-key": "1: 2\n",
    "epochs-negative": "epochs: -1\n",
    "epochs-zero": "epochs: 0\n",
    "epochs-huge-float": "epochs: 1.0e+23\n",
    "epochs-huge-int": f"epochs: {HUGE}\n",
    "epochs-inf": "epochs: .inf\n",
    "epochs-text": "epochs: three\n",
    "epochs-list": "epochs: [3]\n",
    "epochs-map": "epochs: {a: 1}\n",
    "lr-zero": "lr: 0\n",
    "lr-negative": "lr: -1\n",
    "lr-nan": "lr: .nan\n",
    "lr-inf": "lr: .inf\n",
    "lr-huge": "lr: 1.0e+300\n",
    "batch-zero": "batch_size: 0\n",
    "batch-huge": "batch_size: 99999999999\n",
    "seed-negative": "seed: -1\n",
    "seed-huge": f"seed: {HUGE}\n",
    "channels-one": "init_channels: 1\n",
    "channels-huge": "init_channels: 100000\n",
    "layers-zero": "layers: 0\n",
    "image-tiny": "image_size: 2\n",
    "threads-zero": "threads: 0\n",
    "unknown-field": "no_such_field: 1\n",
    "data-list": "data: [1, 2]\n",
    "momentum-one": "momentum: 1.0\n",
    "weight-decay-negative": "weight_decay: -0.1\n",
}
SEARCH_CONFIGS = {
    "relaxation": "relaxation: nope\n",
    "partial-k-zero": "partial_k: 0\n",
    "pc-channels": "init_channels: 10\n",
    "primitive": "primitives: [sep_conv_9x9]\n",
    "space": "space: nope\n",
    "steps": "steps: 99\n",
    "preset": "preset: nope\n",
    "strategy": "strategy: random\n",
    "guard": "guard: sometimes\n",
    "tau": "tau_max: 0\n",
    "cost": "cost_objective: beauty\n",
    "cell-without-stage": "cell: DARTS_V2\n",
}
TRAIN_CONFIGS = {
    "net": "net: nope\n",
    "odd-channels": "init_channels: 7\n",
    "lr-order": "lr: 0.01\nlr_min: 0.1\n",
    "drop-path": "drop_path_prob: 1.0\n",
    "label-smoothing": "label_smoothing: 1.0\n",
}


def _config_cases():
    for cmd, extra in (("search", {**SEARCH_CONFIGS}), ("train", {**TRAIN_CONFIGS})):
        for name, text in {**COMMON_CONFIGS, **extra}.items():
            yield pytest.param(cmd, text.encode(), id=f"{cmd}-config-{name}")
        for name, data in NOT_UTF8.items():
            yield pytest.param(cmd, data, id=f"{cmd}-config-{name}")


@pytest.mark.parametrize("cmd,content", list(_config_cases()))
def test_bad_config_file(cmd, content, tmp_path, cli):
    cfg = tmp_path / "in" / "config.yaml"
    cfg.parent.mkdir()
    cfg.write_bytes(content)
    args = ["search"] if cmd == "search" else ["train", "DARTS_V2"]
    _expect_error(cli, tmp_path, [*args, "--config", cfg, "--out", tmp_path / "OUT"])


# ----------------------------------------------------------------------------- genotypes
def _genotypes():
    g = PUBLISHED["DARTS_V2"].to_dict()

    def mut(fn):
        d = _copy.deepcopy(g)
        fn(d)
        return json.dumps(d)

    texts = {
        "space-list": mut(lambda d: d.update(space=[])),
        "unknown-op": mut(lambda d: d["normal"].__setitem__(0, ["sep_conv_9x9", 0])),
        "input-range": mut(lambda d: d["normal"].__setitem__(3, ["sep_conv_3x3", 9])),
        "input-huge": mut(lambda d: d["normal"].__setitem__(3, ["sep_conv_3x3", 2**70])),
        "input-negative": mut(lambda d: d["normal"].__setitem__(3, ["sep_conv_3x3", -1])),
        "input-float": mut(lambda d: d["normal"].__setitem__(3, ["sep_conv_3x3", 1.5])),
        "edge-short": mut(lambda d: d["normal"].__setitem__(0, ["sep_conv_3x3"])),
        "edge-number": mut(lambda d: d["normal"].__setitem__(0, 5)),
        "normal-number": mut(lambda d: d.update(normal=5)),
        "normal-missing": mut(lambda d: d.pop("normal")),
        "normal-odd": mut(lambda d: d["normal"].pop()),
        "concat-text": mut(lambda d: d.update(normal_concat=["a"])),
        "concat-range": mut(lambda d: d.update(normal_concat=[2, 99])),
        "version": mut(lambda d: d.update(version=99)),
        "format": mut(lambda d: d.update(format="other")),
        "meta-list": mut(lambda d: d.update(meta=[1])),
        "empty-object": "{}",
        "list": "[]",
        "null": "null",
        "number": "42",
        "string": '"DARTS_V2"',
        "syntax": '{"normal": [',
        "nan": '{"normal": NaN}',
        "deep-list": DEEP_LIST,
        "deep-map": DEEP_JSON_MAP,
    }
    for name, text in texts.items():
        yield name, text.encode()
    for name, data in NOT_UTF8.items():
        yield name, data


@pytest.mark.parametrize("cmd", ["train", "show"])
@pytest.mark.parametrize("name,content", list(_genotypes()), ids=[n for n, _ in _genotypes()])
def test_bad_genotype_file(cmd, name, content, tmp_path, cli):
    g = tmp_path / "in" / "genotype.json"
    g.parent.mkdir()
    g.write_bytes(content)
    args = ["train", g, "--data", "digits", "--out", tmp_path / "OUT"] if cmd == "train" else ["show", g]
    _expect_error(cli, tmp_path, args)


# ------------------------------------------------------------------------- records, blocks
RECORDS = {
    "object": "{}",
    "empty": "[]",
    "numbers": "[1, 2]",
    "arch-number": '[{"arch": 5, "val_accuracy": 90}]',
    "arch-bad": '[{"arch": "|nope~0|", "val_accuracy": 90}]',
    "acc-missing": '[{"arch": "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"}]',
    "acc-text": '[{"arch": "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "val_accuracy": "high"}]',
    "acc-nan": '[{"arch": "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "val_accuracy": NaN}]',
    "syntax": "[{",
    "deep-list": DEEP_LIST,
    "deep-map": DEEP_JSON_MAP,
}


def _records():
    for name, text in RECORDS.items():
        yield name, text.encode()
    for name, data in NOT_UTF8.items():
        yield name, data


@pytest.mark.parametrize("cmd", ["search", "predictor", "shrink"])
@pytest.mark.parametrize("name,content", list(_records()), ids=[n for n, _ in _records()])
def test_bad_records_file(cmd, name, content, tmp_path, cli):
    f = tmp_path / "in" / "records.json"
    f.parent.mkdir()
    f.write_bytes(content)
    args = {
        "search": ["search", "--space", "nb201", "--strategy", "random", "--evaluator", f"tabular:{f}", "--budget", "3",
                   "--out", tmp_path / "OUT"],
        "predictor": ["predictor", "evaluate", "--records", f, "--train-size", "2", "--seeds", "1"],
        "shrink": ["shrink", "--evaluator", f"tabular:{f}", "--no-oneshot", "--out", tmp_path / "OUT" / "p.json"],
    }[cmd]
    _expect_error(cli, tmp_path, args)


BLOCKS = [(n, c) for n, c in _genotypes() if n in ("list", "syntax", "deep-list", "number", "unknown-op")] + list(NOT_UTF8.items())[:4]


@pytest.mark.parametrize("name,content", BLOCKS, ids=[n for n, _ in BLOCKS])
def test_bad_blocks_file_for_evolve(name, content, tmp_path, cli):
    f = tmp_path / "in" / "block.json"
    f.parent.mkdir()
    f.write_bytes(content)
    _expect_error(cli, tmp_path, ["evolve", "--data", "digits", "--blocks", f, "--out", tmp_path / "OUT"])


# ------------------------------------------------------------------------- flags and paths
def _flag_cases():
    S = ["search", "--out", "{OUT}"]
    N = ["search", "--space", "nb201", "--evaluator", TABLE, "--out", "{OUT}"]
    T = ["train", "DARTS_V2", "--data", "digits", "--out", "{OUT}"]
    E = ["evolve", "--data", "digits", "--blocks", "DARTS_V2", "--out", "{OUT}"]
    cases = {
        "search-seed-huge": S + ["--seed", HUGE],
        "search-seed-negative": S + ["--seed", "-1"],
        "search-epochs-zero": S + ["--epochs", "0"],
        "search-epochs-text": S + ["--epochs", "abc"],
        "search-epochs-float": S + ["--epochs", "1e23"],
        "search-batch-zero": S + ["--batch-size", "0"],
        "search-pc-channels": S + ["--init-channels", "10"],
        "search-channels-one": S + ["--init-channels", "1"],
        "search-channels-huge": S + ["--init-channels", "100000"],
        "search-image-tiny": S + ["--image-size", "3"],
        "search-samples-tiny": S + ["--max-samples", "5"],
        "search-relaxation": S + ["--relaxation", "nope"],
        "search-guard": S + ["--guard", "nope"],
        "search-device": S + ["--device", "tpu", "--data", "digits"],
        "search-threads": S + ["--threads", "0"],
        "search-preset": S + ["--preset", "nope"],
        "search-space": S + ["--space", "nope", "--evaluator", TABLE],
        "search-cost": S + ["--cost", "beauty"],
        "search-cost-lambda": S + ["--cost-lambda", "-1"],
        "search-max-latency-nan": S + ["--max-latency-ms", "nan", "--cost", "latency"],
        "search-latency-predictor": S + ["--latency-predictor", "{IN}/missing.pt"],
        "search-nproc": S + ["--nproc", "0"],
        "search-cell": S + ["--cell", "DARTS_V2"],
        "search-unknown-flag": S + ["--nope"],
        "search-data-missing": S + ["--data", "{IN}/missing"],
        "search-data-junk-file": S + ["--data", "{IN}/junk.npz"],
        "search-data-text-file": S + ["--data", "{IN}/notes.txt"],
        "search-config-folder": S + ["--config", "{IN}"],
        "search-config-missing": S + ["--config", "{IN}/missing.yaml"],
        "search-out-file": ["search", "--out", "{IN}/notes.txt"],
        "search-out-under-file": ["search", "--out", "{IN}/notes.txt/run"],
        "search-resume-file": ["search", "--resume", "{IN}/notes.txt"],
        "search-resume-empty": ["search", "--resume", "{IN}/empty"],
        "search-resume-missing": ["search", "--resume", "{IN}/missing"],
        "search-resume-with-flag": ["search", "--resume", "{IN}/empty", "--epochs", "3"],
        "nb201-strategy": N + ["--strategy", "greedy"],
        "nb201-budget-zero": N + ["--budget", "0"],
        "nb201-budget-over": N + ["--budget", "726"],
        "nb201-seed-huge": N + ["--seed", HUGE],
        "nb201-evaluator-kind": ["search", "--space", "nb201", "--evaluator", "nope:x", "--out", "{OUT}"],
        "nb201-evaluator-colonless": ["search", "--space", "nb201", "--evaluator", "tabular", "--out", "{OUT}"],
        "nb201-eta": N + ["--strategy", "bohb", "--eta", "1"],
        "nb201-out-file": ["search", "--space", "nb201", "--evaluator", TABLE, "--out", "{IN}/notes.txt"],
        "train-no-genotype": ["train", "--out", "{OUT}"],
        "train-genotype-unknown": ["train", "DARTS_V9", "--out", "{OUT}"],
        "train-genotype-folder": ["train", "{IN}/empty", "--out", "{OUT}"],
        "train-epochs-zero": T + ["--epochs", "0"],
        "train-lr-zero": T + ["--lr", "0"],
        "train-lr-negative": T + ["--lr", "-1"],
        "train-lr-nan": T + ["--lr", "nan"],
        "train-lr-inf": T + ["--lr", "inf"],
        "train-drop-path": T + ["--drop-path-prob", "1"],
        "train-odd-channels": T + ["--init-channels", "7"],
        "train-net": T + ["--net", "nope"],
        "train-seed-huge": T + ["--seed", HUGE],
        "train-grad-clip-zero": T + ["--grad-clip", "0"],
        "train-resume-missing": ["train", "--resume", "{IN}/missing"],
        "train-resume-empty": ["train", "--resume", "{IN}/empty"],
        "train-resume-file": ["train", "--resume", "{IN}/notes.txt"],
        "train-config-folder": T + ["--config", "{IN}"],
        "train-out-file": ["train", "DARTS_V2", "--data", "digits", "--out", "{IN}/notes.txt"],
        "train-data-missing": ["train", "DARTS_V2", "--data", "{IN}/missing", "--out", "{OUT}"],
        "show-unknown": ["show", "NOT_A_GENOTYPE"],
        "show-net": ["show", "DARTS_V2", "--net", "nope"],
        "show-folder": ["show", "{IN}/empty"],
        "export-missing": ["export", "{IN}/missing", "--format", "onnx"],
        "export-format": ["export", "{IN}/empty", "--format", "nope"],
        "export-not-a-run": ["export", "{IN}/empty", "--format", "onnx"],
        "export-junk-model": ["export", "{IN}/model.pt", "--format", "onnx"],
        "report-missing": ["report", "{IN}/missing"],
        "report-empty": ["report", "{IN}/empty"],
        "report-file": ["report", "{IN}/notes.txt"],
        "evolve-data-missing": ["evolve", "--data", "{IN}/missing", "--blocks", "DARTS_V2", "--out", "{OUT}"],
        "evolve-population": E + ["--population", "1"],
        "evolve-objectives": E + ["--objectives", "beauty,error"],
        "evolve-widths": E + ["--widths", "a,b"],
        "evolve-blocks": ["evolve", "--data", "digits", "--blocks", "NOPE", "--out", "{OUT}"],
        "evolve-seed-huge": E + ["--seed", HUGE],
        "evolve-max-params": E + ["--max-params", "-1"],
        "evolve-resume-missing": ["evolve", "--resume", "{IN}/missing"],
        "evolve-resume-with-flag": ["evolve", "--resume", "{IN}/empty", "--epochs", "3"],
        "search-one-class": S + ["--data", "{IN}/one.npz"],
        "train-one-class": ["train", "DARTS_V2", "--data", "{IN}/one.npz", "--out", "{OUT}"],
        "evolve-one-class": ["evolve", "--data", "{IN}/one.npz", "--blocks", "DARTS_V2", "--out", "{OUT}"],
        "latency-genotype": ["latency", "measure", "NOT_A_GENOTYPE"],
        "unknown-command": ["frobnicate"],
    }
    return [pytest.param(v, id=k) for k, v in cases.items()]


@pytest.mark.parametrize("args", _flag_cases())
def test_bad_flag_or_path(args, tmp_path, cli):
    d = tmp_path / "in"
    (d / "empty").mkdir(parents=True)
    (d / "notes.txt").write_text("notes\n")
    (d / "junk.npz").write_bytes(_binary(7))
    (d / "model.pt").write_bytes(_binary(8))
    import numpy as np

    np.savez(d / "one.npz", x=np.zeros((40, 8, 8), np.uint8), y=np.zeros(40, np.int64))  # a single class
    argv = [a.replace("{OUT}", str(tmp_path / "OUT")).replace("{IN}", str(d)) for a in args]
    _expect_error(cli, tmp_path, argv)


# ------------------------------------------------------------------- damaged run directories
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished tiny search, a finished tiny training run and a finished tabular search."""
    from dnas.cli import main

    base = tmp_path_factory.mktemp("runs")
    assert main(["search", "--data", "digits", "--image-size", "8", "--init-channels", "4", "--layers", "3", "--epochs", "1",
                 "--max-samples", "120", "--warmup-epochs", "0", "--guard", "off", "--threads", "1", "--out",
                 str(base / "search"), "-q"]) == 0
    assert main(["train", "DARTS_V2", "--data", "digits", "--image-size", "8", "--init-channels", "4", "--layers", "2",
                 "--epochs", "1", "--batch-size", "256", "--threads", "1", "--out", str(base / "train"), "-q"]) == 0
    assert main(["search", "--space", "nb201", "--evaluator", TABLE, "--budget", "4", "--out", str(base / "tabular"), "-q"]) == 0
    return {k: base / k for k in ("search", "train", "tabular")}


def _damage_bytes(p: Path) -> None:
    b = bytearray(p.read_bytes())
    b[len(b) // 2: len(b) // 2 + 64] = bytes(64)
    p.write_bytes(bytes(b))


DAMAGES = {
    "config-empty": lambda r: (r / "config.yaml").write_text(""),
    "config-not-utf8": lambda r: (r / "config.yaml").write_bytes(NOT_UTF8["latin1"]),
    "config-list": lambda r: (r / "config.yaml").write_text("- a\n"),
    "config-deep": lambda r: (r / "config.yaml").write_text(DEEP_LIST),
    "config-edited": lambda r: (r / "config.yaml").write_text((r / "config.yaml").read_text().replace("seed: 0", "seed: 1")),
    "manifest-garbage": lambda r: (r / "manifest.json").write_text("{"),
    "manifest-not-utf8": lambda r: (r / "manifest.json").write_bytes(_binary(3)),
    "manifest-list": lambda r: (r / "manifest.json").write_text("[]"),
    "manifest-deleted": lambda r: (r / "manifest.json").unlink(),
    "events-not-utf8": lambda r: (r / "events.jsonl").write_bytes(_binary(4) + b"\n" + (r / "events.jsonl").read_bytes()),
    "events-garbage-line": lambda r: (r / "events.jsonl").write_text("nonsense\n" + (r / "events.jsonl").read_text()),
    "events-list-line": lambda r: (r / "events.jsonl").write_text("[1]\n" + (r / "events.jsonl").read_text()),
}
CKPT_DAMAGES = {
    "checkpoint-bytes": lambda r: _damage_bytes(r / "checkpoint.pt"),
    "checkpoint-truncated": lambda r: (r / "checkpoint.pt").write_bytes((r / "checkpoint.pt").read_bytes()[:100]),
    "checkpoint-other-torch-file": lambda r: torch.save({"x": torch.zeros(2)}, r / "checkpoint.pt"),
    "checkpoint-text": lambda r: (r / "checkpoint.pt").write_text("hello"),
}
COMMANDS = {
    "search": [["search", "--resume", "{RUN}"], ["export", "{RUN}", "--format", "state-dict"], ["report", "{RUN}"]],
    "train": [["train", "--resume", "{RUN}"], ["export", "{RUN}", "--format", "state-dict", "--out", "{RUN}/../x.pt"],
              ["report", "{RUN}"]],
    "tabular": [["search", "--resume", "{RUN}"], ["report", "{RUN}"]],
}


def _damage_cases():
    for kind, commands in COMMANDS.items():
        damages = {**DAMAGES, **(CKPT_DAMAGES if kind != "tabular" else {})}
        if kind == "train":
            damages["model-bytes"] = lambda r: _damage_bytes(r / "model.pt")
            damages["genotype-garbage"] = lambda r: (r / "genotype.json").write_text("{")
        for dname, damage in damages.items():
            for args in commands:
                if dname.startswith("events") and args[0] == "export":
                    continue  # export does not read the log
                if kind == "train" and args[0] == "export" and not dname.startswith(("model", "manifest")):
                    continue  # a training run exports model.pt, its only input
                if dname.startswith("genotype") and args[0] != "train":
                    continue
                if dname == "manifest-deleted" and args[0] == "report":
                    continue  # report reads runs of any age; without a manifest there is nothing to verify
                yield pytest.param(kind, damage, args, id=f"{kind}-{dname}-{args[0]}")


@pytest.mark.parametrize("kind,damage,args", list(_damage_cases()))
def test_damaged_run_directory(kind, damage, args, runs, tmp_path, cli):
    run = tmp_path / "run"
    shutil.copytree(runs[kind], run)
    if kind in ("search", "train"):  # unfinished, so resume would write
        (run / "result.json").unlink()
        lines = [l for l in (run / "events.jsonl").read_text().splitlines() if '"event": "end"' not in l]
        (run / "events.jsonl").write_text("".join(l + "\n" for l in lines))
    damage(run)
    argv = [a.replace("{RUN}", str(run)) for a in args]
    _expect_error(cli, tmp_path, argv)


# ------------------------------------------------------------------------------- helpers
def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}


def _expect_error(cli, tmp_path: Path, argv) -> None:
    before = _snapshot(tmp_path)
    code, _, err = cli(*argv)
    assert_one_error_line(code, err)
    assert _snapshot(tmp_path) == before, "a failing command wrote files"
