"""Data for a cell search: load the configured dataset, split it deterministically, and wrap
the weight (train) and architecture (val) splits in seeded batch iterators. The test split is
never seen by the search."""
from __future__ import annotations

import torch

from dnas.config import SearchConfig
from dnas.data import Batches, ImageData, load_dataset, split_dataset
from dnas.transforms import default_eval_transform


def subsample(data: ImageData, max_samples: int | None, seed: int) -> ImageData:
    """At most ``max_samples`` images, chosen by a seeded permutation (for quick runs)."""
    if max_samples is None or max_samples >= len(data.y):
        return data
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.y), generator=g)[:max_samples].sort().values
    return ImageData(data.name, data.x[idx], data.y[idx], data.num_classes, data.classes, data.test_x, data.test_y)


def search_batches(cfg: SearchConfig) -> tuple[Batches, Batches, int, int]:
    data = subsample(load_dataset(cfg.data, image_size=cfg.image_size), cfg.max_samples, cfg.seed)
    splits = split_dataset(data, seed=cfg.seed, val_fraction=1.0 - cfg.train_portion, test_fraction=cfg.test_fraction)
    tf = default_eval_transform(data)
    train_b = Batches(*splits.train, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=False, transform=tf)
    val_b = Batches(*splits.val, cfg.batch_size, shuffle=True, seed=cfg.seed + 1, drop_last=False, transform=tf)
    return train_b, val_b, data.num_classes, data.in_channels
