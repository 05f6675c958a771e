"""The data split of a run, written as ``splits.json``: the data spec, a content fingerprint and
the sample indices of train / val / test.

Why a file: a search and the training run of its genotype must not share test images, and the
only way anyone can check that is to see both runs' indices. ``dnas train`` of a searched
genotype reads the search's file and takes its test set as its own (see
:func:`dnas.trainer.TrainConfig.test_split_from`); the fingerprint makes sure the indices are read
against the same images.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dnas.data import ImageData, SplitIndices
from dnas.errors import ConfigError

FORMAT = "dnas.splits"
FILENAME = "splits.json"


def _sha256(t: Tensor | None) -> str | None:
    if t is None:
        return None
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def fingerprint(data: ImageData) -> dict[str, Any]:
    """SHA-256 of the loaded tensors. Labels are hashed apart from images so that two runs at
    different ``image_size`` (same samples, resized) can still be matched sample by sample."""
    return {
        "n": len(data.y), "n_test": None if data.test_y is None else len(data.test_y),
        "x_sha256": _sha256(data.x), "y_sha256": _sha256(data.y),
        "test_x_sha256": _sha256(data.test_x), "test_y_sha256": _sha256(data.test_y),
        "shape": list(data.x.shape[1:]),
    }


def splits_record(data_spec: str, image_size: int | None, data: ImageData, idx: SplitIndices,
                  **extra: Any) -> dict[str, Any]:
    """The JSON object of ``splits.json``."""
    return {
        "format": FORMAT, "version": 1, "data": str(data_spec), "image_size": image_size,
        "fingerprint": fingerprint(data), "test_source": idx.test_source,
        "train": idx.train.tolist(), "val": idx.val.tolist(), "test": idx.test.tolist(), **extra,
    }


def write_splits(run_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    from dnas.io import write_json

    return write_json(Path(run_dir) / FILENAME, record)


def read_splits(path: str | os.PathLike) -> dict[str, Any]:
    """A ``splits.json`` (or the one inside a run directory), checked for its format."""
    p = Path(path)
    if p.is_dir():
        p = p / FILENAME
    try:
        rec = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"test_split_from: {p} does not exist; pass a run directory that has a {FILENAME}") from None
    except json.JSONDecodeError:
        raise ConfigError(f"test_split_from: {p} is not valid JSON; rerun the search or pass other data") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise ConfigError(f"test_split_from: {p} is not a dnas splits file; pass the {FILENAME} of a dnas run")
    return rec


def reused_test_indices(rec: dict[str, Any], data: ImageData, where: str) -> Tensor | None:
    """The test indices of ``rec`` to reuse on ``data``, after checking they name the same samples
    (labels' fingerprint and count). None when the test set is the source's own (predefined) one."""
    fp = fingerprint(data)
    old = rec.get("fingerprint", {})
    if old.get("n") != fp["n"] or old.get("y_sha256") != fp["y_sha256"] or old.get("test_y_sha256") != fp["test_y_sha256"]:
        raise ConfigError(
            f"test_split_from: {where} was written for other data ({rec.get('data')!r}, {old.get('n')} samples); "
            "pass the same --data as the search or drop test_split_from"
        )
    if rec.get("test_source") == "predefined":
        return None
    return torch.tensor(rec["test"], dtype=torch.long)
