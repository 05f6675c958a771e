"""Data loading, splits, the batch loader and batch transforms, on real small data.

Every file-format test writes a tiny real dataset into tmp_path (PNG via Pillow, CIFAR
pickles in the official python layout, .npz via numpy) and loads it back.
"""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from dnas.data import BUILTIN, Batches, ImageData, channel_stats, load_dataset, split_dataset
from dnas.errors import DataError, DnasError
from dnas.transforms import (Compose, Cutout, Normalize, RandomCropPad, RandomHorizontalFlip,
                             default_crop_padding, default_eval_transform, default_train_transform)


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_dataset("digits")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- built-in data
def test_digits_builtin(digits):
    assert digits.x.shape == (1797, 1, 8, 8) and digits.x.dtype == torch.float32
    assert digits.y.shape == (1797,) and digits.y.dtype == torch.int64
    assert digits.num_classes == 10 and digits.classes == [str(i) for i in range(10)]
    assert float(digits.x.min()) == 0.0 and float(digits.x.max()) == 1.0
    assert sorted(digits.y.unique().tolist()) == list(range(10))
    assert digits.in_channels == 1 and digits.image_size == 8 and digits.test_x is None
    # the fast CSV path gives exactly scikit-learn's load_digits() arrays, divided by 16
    from sklearn.datasets import load_digits

    ref = load_digits()
    assert torch.equal(digits.x, torch.from_numpy(ref.images[:, None] / 16.0).float())
    assert torch.equal(digits.y, torch.from_numpy(ref.target).long())


def test_mnist_builtin_and_resize():
    m = load_dataset("mnist")
    assert m.x.shape == (5000, 1, 28, 28) and m.num_classes == 10
    assert torch.bincount(m.y).tolist() == [500] * 10
    assert 0.0 <= float(m.x.min()) and float(m.x.max()) == 1.0
    assert torch.allclose(m.x * 255, (m.x * 255).round(), atol=1e-3)
    small = load_dataset("mnist", image_size=14)
    assert small.x.shape == (5000, 1, 14, 14) and small.image_size == 14
    assert 0.0 <= float(small.x.min()) and float(small.x.max()) <= 1.0
    # antialiased downsampling preserves the mean brightness closely
    assert abs(float(small.x.mean()) - float(m.x.mean())) < 0.01
    assert set(BUILTIN) >= {"digits", "mnist"}


def test_builtin_returns_independent_copies():
    a = load_dataset("digits")
    a.x.zero_()
    assert float(load_dataset("digits").x.max()) == 1.0


# --------------------------------------------------------------------------- image folders
def _write_pngs(root, classes: dict[str, int], size=(6, 6), mode="L", seed=0):
    rng = np.random.default_rng(seed)
    written = {}
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            shape = size[::-1] + ((3,) if mode == "RGB" else ())
            arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(arr, mode=mode).save(root / name / f"{i:03d}.png")
            written[(name, i)] = arr
    return written


def test_image_folder_grey(tmp_path):
    written = _write_pngs(tmp_path / "shapes", {"circle": 3, "square": 2})
    (tmp_path / "shapes" / "notes.txt").write_text("not an image")  # stray files are ignored
    d = load_dataset(tmp_path / "shapes")
    assert d.name == "shapes" and d.classes == ["circle", "square"] and d.num_classes == 2
    assert d.x.shape == (5, 1, 6, 6) and d.y.tolist() == [0, 0, 0, 1, 1]
    # pixels round-trip exactly (PNG is lossless)
    assert torch.equal((d.x[3, 0] * 255).round().to(torch.uint8), torch.from_numpy(written[("square", 0)]))
    assert d.test_x is None


def test_image_folder_rgb_train_test_and_resize(tmp_path):
    root = tmp_path / "pets"
    _write_pngs(root / "train", {"cat": 4, "dog": 3}, size=(10, 10), mode="RGB")
    _write_pngs(root / "test", {"cat": 1, "dog": 2}, size=(10, 10), mode="RGB", seed=1)
    d = load_dataset(str(root), image_size=8)
    assert d.x.shape == (7, 3, 8, 8) and d.test_x.shape == (3, 3, 8, 8)
    assert d.y.tolist() == [0] * 4 + [1] * 3 and d.test_y.tolist() == [0, 1, 1]
    s = split_dataset(d, seed=0, val_fraction=0.5, test_fraction=0.9)  # test_fraction ignored
    assert torch.equal(s.test[0], d.test_x) and len(s.train[1]) + len(s.val[1]) == 7


def test_image_folder_train_only_and_val_as_test(tmp_path):
    _write_pngs(tmp_path / "a" / "train", {"x": 2, "y": 2})
    d = load_dataset(tmp_path / "a")
    assert d.classes == ["x", "y"] and len(d) == 4 and d.test_x is None
    _write_pngs(tmp_path / "a" / "val", {"y": 1}, seed=3)
    d = load_dataset(tmp_path / "a")
    assert d.test_y.tolist() == [1]  # test classes use the train folder's class indices
    _write_pngs(tmp_path / "b" / "train", {"x": 2})
    _write_pngs(tmp_path / "b" / "test", {"z": 1})
    with pytest.raises(DataError, match="z"):
        load_dataset(tmp_path / "b")


def test_image_folder_non_square_needs_image_size(tmp_path):
    _write_pngs(tmp_path / "wide", {"a": 2, "b": 2}, size=(8, 4))
    with pytest.raises(DataError, match="image_size"):
        load_dataset(tmp_path / "wide")
    assert load_dataset(tmp_path / "wide", image_size=5).x.shape == (4, 1, 5, 5)


# --------------------------------------------------------------------------- npz
@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(12, 7, 7, 3 if layout != "nhw" else 1), dtype=np.uint8)
    x = {"nhw": img[..., 0], "nhwc": img, "nchw": img.transpose(0, 3, 1, 2)}[layout]
    y = np.arange(12) % 3
    np.savez(tmp_path / "toy.npz", x=x, y=y, x_test=x[:4], y_test=y[:4])
    d = load_dataset(tmp_path / "toy.npz")
    c = 1 if layout == "nhw" else 3
    assert d.x.shape == (12, c, 7, 7) and d.test_x.shape == (4, c, 7, 7)
    assert d.num_classes == 3 and d.y.tolist() == y.tolist()
    # channel 0 of image 5 at (row 2, col 4) round-trips through the layout conversion
    assert round(float(d.x[5, 0, 2, 4]) * 255) == int(img[5, 2, 4, 0])


def test_npz_float_and_class_names(tmp_path):
    x = np.random.default_rng(1).random((6, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "f.npz", x=x, y=np.array([0, 1, 0, 1, 0, 1]), classes=np.array(["no", "yes"]))
    d = load_dataset(tmp_path / "f.npz")
    assert d.classes == ["no", "yes"] and torch.allclose(d.x[:, 0], torch.from_numpy(x))


# --------------------------------------------------------------------------- CIFAR python batches
def _cifar_dict(n: int, label_key: bytes, n_classes: int, rng) -> tuple[dict, np.ndarray]:
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, n_classes, size=n)]
    return {b"batch_label": b"toy", label_key: labels, b"data": data, b"filenames": [b"f.png"] * n}, data


def _dump(obj, path):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)  # the real archives are Python-2 pickles


def test_cifar10_python_layout(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    datas = []
    for i in range(1, 6):
        d, data = _cifar_dict(4, b"labels", 10, rng)
        _dump(d, root / f"data_batch_{i}")
        datas.append((data, d[b"labels"]))
    test, test_data = _cifar_dict(3, b"labels", 10, rng)
    _dump(test, root / "test_batch")
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _dump({b"label_names": names, b"num_cases_per_batch": 4}, root / "batches.meta")
    for spec in (root, tmp_path):  # the directory itself, or its parent
        d = load_dataset(spec)
        assert d.name == "cifar10" and d.classes[0] == "airplane" and d.num_classes == 10
        assert d.x.shape == (20, 3, 32, 32) and d.test_x.shape == (3, 3, 32, 32)
        assert d.y.tolist() == sum((lab for _, lab in datas), [])
        # batch order 1..5 and the R-plane/G-plane/B-plane row layout are preserved
        first_of_batch2 = datas[1][0][0]
        assert round(float(d.x[4, 1, 0, 5]) * 255) == int(first_of_batch2[1024 + 5])
        assert round(float(d.test_x[2, 2, 31, 31]) * 255) == int(test_data[2][3071])


def test_cifar100_python_layout(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    train, train_data = _cifar_dict(8, b"fine_labels", 100, rng)
    train[b"coarse_labels"] = [0] * 8
    _dump(train, root / "train")
    test, _ = _cifar_dict(2, b"fine_labels", 100, rng)
    _dump(test, root / "test")
    _dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)],
           b"coarse_label_names": [b"x"] * 20}, root / "meta")
    d = load_dataset(root, image_size=16)
    assert d.name == "cifar100" and d.num_classes == 100 and d.classes[7] == "c7"
    assert d.x.shape == (8, 3, 16, 16) and d.test_x.shape == (2, 3, 16, 16)
    assert d.y.tolist() == train[b"fine_labels"]


def test_cifar_pickle_with_code_is_refused(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    _dump({b"data": Evil(), b"labels": [0]}, root / "data_batch_1")
    with pytest.raises(DataError, match="data_batch_1"):
        load_dataset(root)
    assert not marker.exists()


# --------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("case", ["unknown", "missing_dir", "npz_no_y", "empty_folder", "bad_npz", "float_range"])
def test_bad_inputs_raise_one_line_data_error(tmp_path, case):
    if case == "unknown":
        spec, needle = "imagenet", "imagenet"
    elif case == "missing_dir":
        spec, needle = str(tmp_path / "nope"), "does not exist"
    elif case == "npz_no_y":
        np.savez(tmp_path / "a.npz", x=np.zeros((3, 4, 4), np.uint8))
        spec, needle = tmp_path / "a.npz", "'y'"
    elif case == "empty_folder":
        (tmp_path / "empty" / "cls").mkdir(parents=True)
        spec, needle = tmp_path / "empty", "no class subfolders"
    elif case == "bad_npz":
        (tmp_path / "b.npz").write_bytes(b"this is not a zip")
        spec, needle = tmp_path / "b.npz", "npz"
    else:
        np.savez(tmp_path / "c.npz", x=np.full((2, 4, 4), 200.0, np.float32), y=np.array([0, 1]))
        spec, needle = tmp_path / "c.npz", "[0, 1]"
    with pytest.raises(DataError) as info:
        load_dataset(spec)
    msg = str(info.value)
    assert isinstance(info.value, DnasError) and "\n" not in msg and needle in msg


# --------------------------------------------------------------------------- splits
def test_split_deterministic_disjoint_stratified_covering(digits):
    a = split_dataset(digits, seed=3, val_fraction=0.5, test_fraction=0.2)
    b = split_dataset(digits, seed=3, val_fraction=0.5, test_fraction=0.2)
    c = split_dataset(digits, seed=4, val_fraction=0.5, test_fraction=0.2)
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(a, part)[0], getattr(b, part)[0])
        assert torch.equal(getattr(a, part)[1], getattr(b, part)[1])
    assert not torch.equal(a.test[0], c.test[0])
    n = len(digits)
    assert len(a.test[1]) == round(0.2 * n)
    assert len(a.val[1]) == round(0.5 * (n - round(0.2 * n)))
    # disjoint and covering: the three splits together are exactly the dataset as a multiset
    all_rows = torch.cat([a.train[0], a.val[0], a.test[0]])
    assert len(all_rows) == n
    assert sorted(map(tuple, (all_rows.flatten(1) * 16).round().long().tolist())) == \
        sorted(map(tuple, (digits.x.flatten(1) * 16).round().long().tolist()))
    # stratified: each class's share in every split is within one sample of its quota
    full = torch.bincount(digits.y, minlength=10).double()
    for part, frac in (("test", 0.2), ("val", 0.4), ("train", 0.4)):
        counts = torch.bincount(getattr(a, part)[1], minlength=10).double()
        assert (counts - frac * full).abs().max() <= 1.5, (part, counts, frac * full)
    tv_x, tv_y = a.trainval
    assert len(tv_y) == len(a.train[1]) + len(a.val[1])


def test_split_rejects_empty_part():
    tiny = ImageData("tiny", torch.rand(2, 1, 4, 4), torch.tensor([0, 1]), 2, ["a", "b"])
    with pytest.raises(DataError, match="empty"):
        split_dataset(tiny, seed=0, val_fraction=0.5, test_fraction=0.2)


# --------------------------------------------------------------------------- Batches
def test_batches_deterministic_per_epoch_and_resumable(digits):
    x, y = digits.x[:200], digits.y[:200]
    tf = default_train_transform(digits, augment=True, cutout=3)

    def run(epoch, start=0, seed=7):
        b = Batches(x, y, 32, shuffle=True, seed=seed, transform=tf)
        b.set_epoch(epoch, start_batch=start)
        return list(b)

    e1, e1_again, e2 = run(1), run(1), run(2)
    assert len(e1) == 7 and [len(yb) for _, yb in e1] == [32] * 6 + [8]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(e1, e1_again))
    assert not torch.equal(e1[0][1], e2[0][1])
    assert not torch.equal(run(1, seed=8)[0][1], e1[0][1])
    # every sample appears once per epoch
    assert sorted(torch.cat([yb for _, yb in e1]).tolist()) == sorted(y.tolist())
    # resuming mid-epoch gives exactly the remaining batches, augmentation included
    resumed = run(1, start=4)
    assert len(resumed) == 3 and all(torch.equal(a[0], b[0]) for a, b in zip(resumed, e1[4:]))


def test_batches_no_shuffle_drop_last(digits):
    b = Batches(digits.x[:50], digits.y[:50], 16, shuffle=False, drop_last=True)
    got = list(b)
    assert len(b) == len(got) == 3
    assert torch.equal(got[1][0], digits.x[16:32]) and torch.equal(got[2][1], digits.y[32:48])
    with pytest.raises(DataError):
        Batches(digits.x[:5], digits.y[:4], 2, shuffle=False)


# --------------------------------------------------------------------------- transforms
def test_crop_pad_keeps_shape_and_shifts_content():
    x = torch.rand(16, 2, 9, 9) + 0.5  # strictly positive, so padding zeros are recognisable
    out = RandomCropPad(2)(x, _gen(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = []
    for i in range(16):
        match = [(dy, dx) for dy in range(5) for dx in range(5)
                 if torch.equal(out[i], padded[i, :, dy:dy + 9, dx:dx + 9])]
        assert len(match) == 1  # the output is one window of the zero-padded image
        shifts.append(match[0])
    assert len(set(shifts)) > 3  # offsets are drawn per sample
    assert (out == 0).any()  # some content was shifted out and zeros shifted in
    assert torch.equal(RandomCropPad(2)(x, _gen(0)), out)


def test_cutout_zeroes_exactly_a_clipped_square():
    x = torch.ones(64, 3, 10, 10)
    out = Cutout(4)(x, _gen(1))
    clipped = 0
    for img in out:
        assert torch.equal(img[0], img[1]) and torch.equal(img[0], img[2])  # same hole in every channel
        zeros = (img[0] == 0).nonzero()
        assert len(zeros) > 0
        (r0, c0), (r1, c1) = zeros.min(0).values.tolist(), zeros.max(0).values.tolist()
        h, w = r1 - r0 + 1, c1 - c0 + 1
        assert len(zeros) == h * w  # the zero set is a full rectangle
        assert h <= 4 and w <= 4
        assert (h == 4 or r0 == 0 or r1 == 9) and (w == 4 or c0 == 0 or c1 == 9)  # smaller only at a border
        clipped += (h, w) != (4, 4)
    assert 0 < clipped < 64  # both whole and border-clipped holes occur
    assert torch.equal(Cutout(4)(x, _gen(1)), out)


def test_flip_and_normalize(digits):
    x = torch.rand(200, 3, 5, 5)
    out = RandomHorizontalFlip(0.5)(x, _gen(2))
    flipped = torch.tensor([torch.equal(o, i.flip(2)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped | kept).all()) and 60 < int(flipped.sum()) < 140
    mean, std = channel_stats(x)
    z = Normalize(mean, std)(x)
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert np.allclose(mean, x.mean((0, 2, 3)).tolist(), atol=1e-6)


def test_default_transforms(digits):
    tf = default_train_transform(digits, augment=True, cutout=2)
    kinds = [type(t) for t in tf.transforms]
    assert kinds == [RandomCropPad, Normalize, Cutout]  # grey digits are never flipped
    rgb = ImageData("rgb", torch.rand(8, 3, 32, 32), torch.zeros(8, dtype=torch.int64), 1, ["a"])
    assert RandomHorizontalFlip in [type(t) for t in default_train_transform(rgb, augment=True).transforms]
    assert default_crop_padding(32) == 4 and default_crop_padding(8) == 1
    x = digits.x[:300]
    a, b = tf(x, _gen(5)), tf(x, _gen(5))
    assert torch.equal(a, b) and not torch.equal(a, tf(x, _gen(6)))
    ev = default_eval_transform(digits)(digits.x, _gen(0))
    assert abs(float(ev.mean())) < 1e-4 and abs(float(ev.std()) - 1) < 1e-3
    assert torch.equal(Compose([])(x, _gen(0)), x)


def test_pipeline_trains_a_small_net_on_digits(digits):
    """End to end: split, augmented Batches and eval transform feed real SGD steps that learn."""
    torch.manual_seed(0)
    s = split_dataset(digits, seed=0)
    train = Batches(*s.trainval, 64, shuffle=True, seed=0,
                    transform=default_train_transform(digits, augment=True, cutout=2))
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 10))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for epoch in range(2):
        train.set_epoch(epoch)
        for xb, yb in train:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xb), yb).backward()
            opt.step()
    with torch.no_grad():
        pred = net(default_eval_transform(digits)(s.test[0], _gen(0))).argmax(1)
    assert float((pred == s.test[1]).float().mean()) > 0.8  # chance is 0.1; ~0.9 seen
