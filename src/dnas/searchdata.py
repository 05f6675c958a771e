"""Data for a cell search: load the configured dataset, split it deterministically, and wrap
the weight (train) and architecture (val) splits in seeded batch iterators. The test split is
fixed first on the whole dataset, then the rest is subsampled to ``max_samples``; the search
never sees it, and ``splits.json`` in the run directory records all three splits' indices."""
from __future__ import annotations

import torch

from dnas.config import SearchConfig
from dnas.data import Batches, ImageData, SplitIndices, load_dataset, split_indices, splits_from_indices
from dnas.transforms import default_eval_transform, default_train_transform


def subsample(data: ImageData, max_samples: int | None, seed: int) -> ImageData:
    """At most ``max_samples`` images, chosen by a seeded permutation (for quick runs)."""
    if max_samples is None or max_samples >= len(data.y):
        return data
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.y), generator=g)[:max_samples].sort().values
    return ImageData(data.name, data.x[idx], data.y[idx], data.num_classes, data.classes, data.test_x, data.test_y)


class ShardedBatches:
    """One rank's slice of every global batch of ``base``.

    Every rank iterates the same seeded global batches as a single process would (same order,
    same augmentation, applied to the whole batch) and keeps the contiguous slice
    ``[rank * n / world, (rank + 1) * n / world)`` (sizes differ by at most one), so the ranks
    together see exactly the single-process batches. ``share`` is the slice's fraction of the
    global batch just yielded: the weight of this rank's gradient in the global one. A final
    batch with fewer samples than ranks is skipped by every rank (it would leave a rank empty).
    """

    def __init__(self, base: Batches, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.base, self.rank, self.world_size = base, rank, world_size
        self.share = 1.0 / world_size

    @property
    def transform(self):
        return self.base.transform

    @transform.setter
    def transform(self, value) -> None:
        self.base.transform = value

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.base.set_epoch(epoch, start_batch)

    def __len__(self) -> int:
        if not hasattr(self.base, "batch_size"):  # another batch iterator: assume no short batch
            return len(self.base)
        last = len(self.base.y) % self.base.batch_size
        short = not self.base.drop_last and 0 < last < self.world_size
        return len(self.base) - short

    def __iter__(self):
        for xb, yb in self.base:
            n = len(yb)
            if n < self.world_size:
                continue
            q, r = divmod(n, self.world_size)
            lo = self.rank * q + min(self.rank, r)
            hi = lo + q + (self.rank < r)
            self.share = (hi - lo) / n
            yield xb[lo:hi], yb[lo:hi]


def search_split(cfg: SearchConfig) -> tuple[ImageData, SplitIndices]:
    """The loaded dataset and the search's split indices (test first, then ``max_samples``)."""
    data = load_dataset(cfg.data, image_size=cfg.image_size)
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    idx = split_indices(data, seed=split_seed, val_fraction=1.0 - cfg.train_portion, test_fraction=cfg.test_fraction,
                        max_samples=cfg.max_samples)
    return data, idx


def write_search_splits(cfg: SearchConfig, run_dir) -> None:
    """Write the search's ``splits.json`` (data spec, fingerprint, train / val / test indices)."""
    from dnas.splits import splits_record, write_splits

    data, idx = search_split(cfg)
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    write_splits(run_dir, splits_record(cfg.data, cfg.image_size, data, idx, seed=split_seed, kind="search",
                                        max_samples=cfg.max_samples))


def search_transform(cfg: SearchConfig, data: ImageData):
    """Both search splits get the same pipeline, as in the DARTS and PC-DARTS search code (their
    train and valid queues both read the training set with its training transform): with
    ``search_augment``, random crop with zero padding (4 px at 32 px, scaled with the image size:
    :func:`dnas.transforms.default_crop_padding`) and a horizontal flip for RGB data only; then
    normalisation."""
    return default_train_transform(data, augment=True) if cfg.search_augment else default_eval_transform(data)


class CycledVal:
    """Val batches for every architecture step of an epoch, however long the train split is.

    The references draw a fresh val batch each step; here the val split is walked in a seeded
    order and, when it runs out before the train split does, walked again in a new order. Pass
    ``k`` of epoch ``e`` uses the batch order of ``e`` itself for ``k = 0`` and of a derived epoch
    number ``e + k * 2**20`` after that, so the batches are a function of (seed, epoch) and a
    resumed run sees exactly the same ones."""

    def __init__(self, batches) -> None:
        self.batches = batches

    def epoch(self, epoch: int):
        k = 0
        while True:
            self.batches.set_epoch(epoch + (k << 20))
            empty = True
            for batch in self.batches:
                empty = False
                yield batch
            if empty:
                return
            k += 1


def search_batches(cfg: SearchConfig, rank: int = 0, world_size: int = 1):
    """Train and val batches (this rank's shards of them when ``world_size > 1``; the global
    batch is ``cfg.batch_size``), the number of classes and input channels."""
    from dnas.errors import ConfigError

    if world_size > cfg.batch_size:
        raise ConfigError(f"batch_size: {cfg.batch_size} is the global batch and cannot be split over {world_size} ranks; raise batch_size to at least {world_size}")
    data, idx = search_split(cfg)
    splits = splits_from_indices(data, idx)
    tf = search_transform(cfg, data)
    train_b = Batches(*splits.train, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=False, transform=tf)
    val_b = Batches(*splits.val, cfg.batch_size, shuffle=True, seed=cfg.seed + 1, drop_last=False, transform=tf)
    if world_size > 1:
        train_b, val_b = ShardedBatches(train_b, rank, world_size), ShardedBatches(val_b, rank, world_size)
    return train_b, val_b, data.num_classes, data.in_channels
