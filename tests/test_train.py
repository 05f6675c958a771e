"""Training from scratch on real data (sklearn digits): learning, files, exact resume, divergence."""
from __future__ import annotations

import json
import math

import pytest
import torch

from dnas.data import Batches, load_dataset, split_dataset
from dnas.errors import ConfigError, DivergenceError, DnasError
from dnas.io import read_jsonl
from dnas.trainer import TrainConfig, evaluate, load_train_config, load_trained, train_config, train_genotype
from dnas.transforms import default_eval_transform



# Tiny, single-threaded settings: digits are 8x8, so a 3-cell net (two reductions) fits.
TINY = dict(data="digits", image_size=0, init_channels=6, layers=3, batch_size=32, threads=1,
            val_fraction=0.2, test_fraction=0.2, auxiliary=False, lr=0.05)


def test_training_learns_and_writes_a_complete_run(tmp_path):
    cfg = train_config(**TINY, epochs=3, drop_path_prob=0.2)
    result = train_genotype("DARTS_V2", cfg, tmp_path, progress=False)

    assert result.test_accuracy > 0.6  # chance is 0.1
    assert result.best_val_accuracy is not None and result.best_val_accuracy > 0.6
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    # cosine schedule from lr to lr_min over the epochs, drop-path ramped linearly
    for h in result.history:
        e = h["epoch"] - 1
        assert h["lr"] == pytest.approx(0.05 * (1 + math.cos(math.pi * e / 3)) / 2)
        assert h["drop_path_prob"] == pytest.approx(0.2 * e / 3)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]

    files = {p.name for p in tmp_path.iterdir()}
    assert {"config.yaml", "genotype.json", "events.jsonl", "checkpoint.pt", "model.pt", "result.json"} <= files
    assert not any(name.endswith(".tmp") for name in files)
    events = read_jsonl(tmp_path / "events.jsonl")
    assert [e["event"] for e in events] == ["start", "epoch", "epoch", "epoch", "end"]
    assert events[0]["params"] == result.params > 0
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["test_accuracy"] == result.test_accuracy and len(saved["history"]) == 3
    assert load_train_config(tmp_path / "config.yaml") == cfg

    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["config"] == cfg.model_dump(mode="json")
    assert {"model", "optimizer", "scheduler", "rng", "history", "genotype"} <= set(ckpt)

    # the saved model alone reproduces the reported test accuracy
    model, meta = load_trained(tmp_path)
    assert not model.training and meta["in_channels"] == 1 and meta["num_classes"] == 10
    data = load_dataset("digits")
    test = split_dataset(data, seed=0, val_fraction=0.2, test_fraction=0.2).test
    _, acc = evaluate(model, Batches(*test, 256, shuffle=False, transform=default_eval_transform(data)),
                      torch.device("cpu"))
    assert acc == pytest.approx(result.test_accuracy, abs=1.5 / len(test[1]))


def test_resume_reproduces_an_uninterrupted_run_exactly(tmp_path):
    # every source of randomness on: drop-path, augmentation with cutout, aux head, smoothing
    cfg = train_config(**{**TINY, "init_channels": 4, "auxiliary": True, "batch_size": 64, "val_fraction": 0.5,
                          "test_fraction": 0.5}, epochs=3, drop_path_prob=0.3,
                       cutout=3, label_smoothing=0.1)
    full = train_genotype("PC_DARTS_cifar", cfg, tmp_path / "full", progress=False)

    class Killed(Exception):
        pass

    def kill_after_two(record):
        if record["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        train_genotype("PC_DARTS_cifar", cfg, tmp_path / "split", progress=False, on_epoch=kill_after_two)
    assert torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["epoch"] == 2
    with pytest.raises(DnasError, match="resume"):
        train_genotype("PC_DARTS_cifar", cfg, tmp_path / "split", progress=False)
    resumed = train_genotype("PC_DARTS_cifar", cfg, tmp_path / "split", resume=True, progress=False)

    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "split" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    def strip(history):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert strip(resumed.history) == strip(full.history)
    assert resumed.test_accuracy == full.test_accuracy
    epochs = [e["epoch"] for e in read_jsonl(tmp_path / "split" / "events.jsonl") if e["event"] == "epoch"]
    assert epochs == [1, 2, 3]


def test_resume_refuses_a_changed_config(tmp_path):
    cfg = train_config(**TINY, epochs=1)
    train_genotype("DARTS_V2", cfg, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="lr"):
        train_genotype("DARTS_V2", cfg.model_copy(update={"lr": 0.2}), tmp_path, resume=True, progress=False)
    with pytest.raises(ConfigError, match="genotype"):
        train_genotype("DARTS_V1", cfg, tmp_path, resume=True, progress=False)


def test_without_validation_split_each_epoch_reports_test_metrics(tmp_path):
    cfg = train_config(**{**TINY, "val_fraction": 0, "init_channels": 4}, epochs=1)
    result = train_genotype("DARTS_V2", cfg, tmp_path, progress=True)
    (record,) = result.history
    assert "val_acc" not in record and result.best_val_accuracy is None
    assert record["test_acc"] == result.test_accuracy  # same weights, same test set


def test_divergence_raises_a_clear_error(tmp_path):
    cfg = train_config(**{**TINY, "lr": 1e6}, epochs=2)
    with pytest.raises(DivergenceError, match=r"epoch \d+, step \d+.*lower lr"):
        train_genotype("DARTS_V2", cfg, tmp_path, progress=False)
    events = read_jsonl(tmp_path / "events.jsonl")
    assert events[-1]["event"] == "diverged"


def test_config_validation_and_files(tmp_path):
    assert TrainConfig().data == "mnist" and TrainConfig().image_size == 16
    assert train_config(image_size=0).image_size is None
    with pytest.raises(ConfigError, match="init_channels"):
        train_config(init_channels=5)
    with pytest.raises(ConfigError, match="unknown field"):
        train_config(epochz=3)
    with pytest.raises(ConfigError, match="net"):
        train_config(net="resnet")
    with pytest.raises(ConfigError, match="lr_min"):
        train_config(lr=0.01, lr_min=0.1)
    path = tmp_path / "train.yaml"
    path.write_text("data: digits\nepochs: 2\n")
    cfg = load_train_config(path, epochs=4, lr=None)
    assert cfg.data == "digits" and cfg.epochs == 4 and cfg.lr == TrainConfig().lr
    path.write_text("epochs: -1\n")
    with pytest.raises(ConfigError, match="epochs"):
        load_train_config(path)
