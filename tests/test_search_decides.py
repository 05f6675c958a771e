"""A search that decides, or says it did not: per-edge margins and the `decided` flag, the whole
train split every epoch with a val batch per architecture step, the papers' search
augmentation, and no genotype from architecture weights that never took a step."""
import json
import subprocess
import sys

import pytest
import torch

import dnas
from dnas.config import PRESETS, make_config
from dnas.data import load_dataset
from dnas.decision import decision, edge_stats
from dnas.errors import ConfigError
from dnas.searchdata import CycledVal, search_batches, search_transform

TINY = dict(data="digits", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=240, epochs=3,
            warmup_epochs=1, threads=1, guard="off", relaxation="darts")


def test_decision_rule_on_known_weights():
    flat = {"normal": [[0.125] * 8] * 14, "edge_normal": [0.5] * 14}
    d = decision(flat, 0.03)
    assert d["decided"] is False and d["mean_top1"] == 0.125 and d["top1_ratio"] == 1.0 and d["choices"] == 14
    peaked = {"normal": [[0.44] + [0.08] * 7] * 14, "reduce": [[0.3, 0.3] + [0.4 / 6] * 6] * 14}
    d = decision(peaked, 0.03)
    assert d["choices"] == 28 and d["mean_margin"] == pytest.approx(0.18, abs=1e-4)
    assert d["decided"] is True and d["min_margin"] == pytest.approx(0.0, abs=1e-6)
    assert edge_stats(peaked)["normal"][0] == [0.44, 0.36]  # [top-1, top-1 - top-2] per edge


def test_every_epoch_walks_the_whole_train_split_with_a_val_batch_per_arch_step(tmp_path):
    # train_portion 0.8: 192 train images (6 batches of 32), 48 val (2 batches): the old zip stopped at 2
    r = dnas.search(out=tmp_path / "s", train_portion=0.8, **TINY)
    steps = [(h["weight_steps"], h["arch_steps"]) for h in r.history]
    assert steps == [(6, 0), (6, 6), (6, 6)]
    # the cycled val batches are a function of (seed, epoch): the same on every call, new order on each pass
    _, val_b, _, _ = search_batches(make_config(overrides=dict(TINY, train_portion=0.8)))
    take = lambda e: [yb.clone() for _, (_, yb) in zip(range(6), CycledVal(val_b).epoch(e))]
    a, b = take(1), take(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(torch.cat(a[:2]), torch.cat(a[2:4]))  # second pass, another order


def test_search_augmentation_as_in_the_papers():
    assert PRESETS["darts"]["search_augment"] and PRESETS["pc-darts"]["search_augment"]
    assert make_config().search_augment is False
    grey = load_dataset("digits16")
    on = make_config(overrides=dict(TINY, data="digits16", search_augment=True))
    names = [type(t).__name__ for t in search_transform(on, grey).transforms]
    assert names == ["RandomCropPad", "Normalize"]  # digits are never flipped
    assert search_transform(on, grey).transforms[0].padding == 2  # 4 px at 32, scaled: 2 at 16
    x = torch.rand(6, 3, 32, 32)
    rgb = type(grey)("rgb", x, torch.arange(6) % 2, 2, ["a", "b"])
    names = [type(t).__name__ for t in search_transform(on, rgb).transforms]
    assert names == ["RandomCropPad", "RandomHorizontalFlip", "Normalize"]
    assert search_transform(on, rgb).transforms[0].padding == 4
    off = on.model_copy(update={"search_augment": False})
    assert [type(t).__name__ for t in search_transform(off, rgb).transforms] == ["Normalize"]
    # both search splits are augmented (the references read both from the augmented training set)
    t_on, v_on, _, _ = search_batches(on)
    t_off, v_off, _, _ = search_batches(off)
    assert not torch.equal(next(iter(t_on))[0], next(iter(t_off))[0])
    assert not torch.equal(next(iter(v_on))[0], next(iter(v_off))[0])


def test_no_genotype_from_untrained_architecture_weights(tmp_path):
    with pytest.raises(ConfigError, match=r"warmup_epochs: 15 >= epochs 10 .*epochs"):
        make_config("pc-darts", overrides=dict(epochs=10))
    with pytest.raises(ConfigError, match="warmup_epochs: 4 >= epochs 4"):
        make_config(overrides=dict(epochs=4, warmup_epochs=4))
    # the quick preset's warm-up scales with the epochs (a quarter of them)
    assert make_config(overrides=dict(epochs=2)).warmup_epochs == 0
    assert make_config().warmup_epochs == 2 and make_config(overrides=dict(epochs=12)).warmup_epochs == 3
    out = subprocess.run([sys.executable, "-m", "dnas", "search", "--preset", "pc-darts", "--epochs", "10",
                          "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "warmup_epochs" in out.stderr and "epochs 10" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x" / "genotype.json").exists()


def test_undecided_search_warns_once_and_says_so_in_result(tmp_path):
    args = ["search", "--data", "digits", "--image-size", "8", "--init-channels", "4", "--layers", "3",
            "--batch-size", "32", "--max-samples", "240", "--epochs", "2", "--warmup-epochs", "1",
            "--relaxation", "darts", "--guard", "off", "--threads", "1", "--quiet"]
    out = subprocess.run([sys.executable, "-m", "dnas", *args, "--arch-lr", "1e-5", "--out", str(tmp_path / "u")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "did not decide" in warnings[0] and "--arch-lr" in warnings[0]
    res = json.loads((tmp_path / "u" / "result.json").read_text())
    assert res["decided"] is False and res["decision"]["mean_margin"] < res["decision"]["threshold"]
    ev = [json.loads(line) for line in (tmp_path / "u" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in ev].count("undecided") == 1
    assert all(len(e["decision"]["edges"]["normal"]) == 14 for e in ev if e["event"] == "epoch")


def test_a_strong_architecture_step_decides(tmp_path):
    r = dnas.search(out=tmp_path / "d", arch_lr=0.3, **{**TINY, "epochs": 4})
    res = json.loads((tmp_path / "d" / "result.json").read_text())
    assert res["decided"] is True and r.decision["decided"] is True
    assert res["decision"]["mean_margin"] >= res["decision"]["threshold"] and res["decision"]["top1_ratio"] > 1.5
    from dnas.commands.search import search_summary

    text = search_summary(r)
    assert "mean top-1" in text and "(decided" in text and "normal top-1/margin per edge" in text
