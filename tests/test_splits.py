"""No test image leaks between a search and the training run of its genotype: both runs write
splits.json, the test split is fixed before max_samples subsamples, and `dnas train` of a
searched genotype tests on the search's held-out test set."""
import json
import subprocess
import sys

import pytest
import torch

import dnas
from dnas.data import load_dataset, split_indices
from dnas.errors import ConfigError

TINY = dict(data="digits", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=200, epochs=2,
            warmup_epochs=1, threads=1, guard="off")
TRAIN = dict(epochs=1, init_channels=4, layers=2, batch_size=64, image_size=8, auxiliary=False, threads=1)


def _splits(run_dir):
    rec = json.loads((run_dir / "splits.json").read_text())
    assert rec["format"] == "dnas.splits"
    return rec


def test_test_split_is_fixed_before_subsampling():
    data = load_dataset("digits")
    full = split_indices(data, seed=3, val_fraction=0.5, test_fraction=0.2)
    small = split_indices(data, seed=3, val_fraction=0.5, test_fraction=0.2, max_samples=300)
    # the same test set whatever max_samples is, and the subsample is drawn from the rest only
    assert torch.equal(full.test, small.test)
    assert len(small.train) + len(small.val) == 300
    seen = set(small.train.tolist()) | set(small.val.tolist())
    assert not seen & set(small.test.tolist())
    assert len(set(small.train.tolist()) & set(small.val.tolist())) == 0
    # the test set of the whole dataset: 20% of 1,797
    assert len(full.test) == round(0.2 * len(data.y))


def test_search_then_train_share_one_test_set_and_never_train_on_it(tmp_path):
    s = dnas.search(out=tmp_path / "s", relaxation="darts", **TINY)
    srec = _splits(s.run_dir)
    assert srec["kind"] == "search" and srec["data"] == "digits" and len(srec["fingerprint"]["x_sha256"]) == 64
    s_train, s_val, s_test = (set(srec[k]) for k in ("train", "val", "test"))
    assert len(s_train) + len(s_val) == TINY["max_samples"]
    assert not (s_train | s_val) & s_test and not s_train & s_val

    t = dnas.train(s.run_dir / "genotype.json", out=tmp_path / "t", **TRAIN)  # no data given: the search's
    trec = _splits(tmp_path / "t")
    t_train, t_val, t_test = (set(trec[k]) for k in ("train", "val", "test"))
    assert trec["test_from"] == str(s.run_dir / "splits.json")
    assert t_test == s_test
    assert not t_train & t_test and not t_val & t_test                # train run: train ∩ test = ∅
    assert not (s_train | s_val) & t_test                              # search(train ∪ val) ∩ train-run(test) = ∅
    assert trec["fingerprint"]["y_sha256"] == srec["fingerprint"]["y_sha256"]
    assert len(t_train) + len(t_val) + len(t_test) == srec["fingerprint"]["n"]  # trains on all non-test images
    assert 0.0 <= t.test_accuracy <= 1.0


def test_other_data_or_a_foreign_splits_file_is_refused(tmp_path):
    s = dnas.search(out=tmp_path / "s", relaxation="darts", **TINY)
    with pytest.raises(ConfigError, match="test_split_from"):
        dnas.train(s.run_dir / "genotype.json", out=tmp_path / "t", data="mnist", test_split_from=str(s.run_dir), **TRAIN)
    # the user passes other data: no test set is inherited
    r = dnas.train(s.run_dir / "genotype.json", out=tmp_path / "u", data="digits16", **{**TRAIN, "image_size": 8})
    assert _splits(tmp_path / "u")["test_from"] is None and r.test_accuracy >= 0.0
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data: mnist\nepochs: 1\ntest_split_from: {s.run_dir}\n")
    out = subprocess.run([sys.executable, "-m", "dnas", "train", str(s.run_dir), "--config", str(cfg),
                          "--out", str(tmp_path / "v"), "--quiet"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: test_split_from:") and out.stderr.count("\n") == 1


def test_split_seed_gives_searches_of_different_seeds_one_test_set():
    from dnas.config import make_config
    from dnas.searchdata import search_split

    a = search_split(make_config(overrides=dict(TINY, seed=1, split_seed=0)))[1]
    b = search_split(make_config(overrides=dict(TINY, seed=2, split_seed=0)))[1]
    c = search_split(make_config(overrides=dict(TINY, seed=2)))[1]
    assert torch.equal(a.test, b.test) and torch.equal(a.train, b.train)
    assert not torch.equal(a.test, c.test)  # without it the split follows the seed
