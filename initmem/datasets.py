"""Datasets by name: CIFAR-10 (the paper's), CIFAR-100, SVHN, Fashion-MNIST, synthetic; plugins add more.

    python -m initmem train --dataset svhn --data ~/data/svhn --download ...   # torchvision's own files
    python -m initmem fields                                                   # lists the registered names

    from initmem.datasets import DATASETS
    spec = DATASETS["fashion_mnist"]
    spec.classes, spec.image_shape, spec.train_size      # 10, (1, 28, 28), 48000 (after the val hold-out)
    x_train, y_train, x_test, y_test = spec.read(path)   # HWC uint8 arrays from the on-disk format

Each dataset is read from the files torchvision downloads (its on-disk format, read here with numpy,
so any copy of those files works, without torchvision's checksum of the originals), or from an .npz
with x_train / y_train / x_test / y_test (HWC uint8, integer labels). `--download` fetches them with
torchvision into ~/.cache/initmem/<name> (or the --data folder). Every dataset is used as the paper
uses CIFAR-10: pixels scaled to [0, 1], no mean/std normalisation, and validation = the first N // 5
of the training images in RandomState(42).permutation(N) order (CIFAR-10: 10,000 of 50,000).

Fashion-MNIST is 28x28 grey: the networks take its shape as it is (one input channel, 28 px; the
ResNets' pools and strides floor 28 -> 14 -> 7 -> 3), and augmentation crops 28x28 after padding.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from initmem.registry import Registry

CACHE = Path.home() / ".cache" / "initmem"


class DataError(ValueError):
    """The data cannot be found or does not have the dataset's shape; the message says what to pass."""


@dataclass(frozen=True)
class DatasetSpec:
    """What the system needs from a dataset. read(path) -> (x_train, y_train, x_test, y_test) as
    HWC uint8 images and integer labels from a folder in the dataset's format (or None: no files,
    e.g. synthetic); download(folder) fetches that folder (None: no download). train_size: images
    of the train split after the validation hold-out; eval_size: of the validation and of the test
    split each (holdout(n_train, n_test) gives both for an official train / test split)."""
    name: str
    classes: int
    image_shape: tuple[int, int, int]          # (C, H, W)
    train_size: int
    eval_size: int
    read: Callable[[Path], tuple] | None
    download: Callable[[Path], None] | None = None
    marker: str = ""                           # a file or folder inside a dataset folder (how a folder is recognised)
    description: str = ""

    def default_folder(self) -> Path:
        return CACHE / self.name


DATASETS: Registry[DatasetSpec] = Registry("dataset", "dataset")


def holdout(n_train: int, n_test: int) -> tuple[int, int]:
    """(train_size, eval_size) of an official split of n_train / n_test images: validation is
    n_train // 5 of the training images (SPEC Section 3); evaluation uses at most as many test images."""
    return n_train - n_train // 5, min(n_train // 5, n_test)


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset (a plugin's too): RunConfig(dataset=spec.name) is then allowed everywhere."""
    return DATASETS.add(spec.name, spec)


# --- the on-disk formats ------------------------------------------------------------------------------

def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{path}: missing ({what}): not a complete torchvision download. Pass --data with an .npz "
                        "or a complete folder, or use --download with internet access.")
    return path


def _pickle(path: Path) -> dict:
    with open(_need(path, "a CIFAR python batch"), "rb") as f:
        return pickle.load(f, encoding="latin1")


def _cifar(folder: Path, sub: str, train: list[str], test: str, label: str) -> tuple:
    base = folder / sub
    if not base.is_dir():
        raise DataError(f"{folder}: no {sub}/ folder here (the torchvision download of this dataset)")
    parts = [_pickle(base / n) for n in train]
    chw = (lambda d: np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    te = _pickle(base / test)
    return (np.concatenate([chw(p) for p in parts]), np.concatenate([np.asarray(p[label]) for p in parts]),
            chw(te), np.asarray(te[label]))


def read_cifar10(folder: Path) -> tuple:
    return _cifar(folder, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "labels")


def read_cifar100(folder: Path) -> tuple:
    return _cifar(folder, "cifar-100-python", ["train"], "test", "fine_labels")


def read_svhn(folder: Path) -> tuple:
    from scipy.io import loadmat  # SVHN ships MATLAB files (torchvision reads them with scipy too)

    def one(name: str):
        m = loadmat(_need(folder / name, "the SVHN file torchvision downloads"))
        y = m["y"].reshape(-1).astype(np.int64)
        return np.ascontiguousarray(m["X"].transpose(3, 0, 1, 2)).astype(np.uint8), np.where(y == 10, 0, y)
    return (*one("train_32x32.mat"), *one("test_32x32.mat"))


def read_fashion_mnist(folder: Path) -> tuple:
    from torchvision.datasets.mnist import read_image_file, read_label_file  # the idx format's reader
    raw = folder / "FashionMNIST" / "raw"

    def images(name):
        return read_image_file(str(_need(raw / name, "Fashion-MNIST idx file"))).numpy()[..., None]

    def labels(name):
        return read_label_file(str(_need(raw / name, "Fashion-MNIST idx file"))).numpy().astype(np.int64)
    return (images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
            images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"))


def _torchvision_download(cls_name: str, **kw) -> Callable[[Path], None]:
    def download(folder: Path) -> None:
        import torchvision.datasets as tvd
        cls = getattr(tvd, cls_name)
        for split in (("train", "test") if "split" in kw else (True, False)):
            if "split" in kw:
                cls(str(folder), split=split, download=True)
            else:
                cls(str(folder), train=split, download=True)
    return download


for _spec in (
    DatasetSpec("cifar10", 10, (3, 32, 32), *holdout(50_000, 10_000), read_cifar10, _torchvision_download("CIFAR10"),
                "cifar-10-batches-py", "CIFAR-10 (the paper's data)"),
    DatasetSpec("cifar100", 100, (3, 32, 32), *holdout(50_000, 10_000), read_cifar100, _torchvision_download("CIFAR100"),
                "cifar-100-python", "CIFAR-100, fine labels"),
    DatasetSpec("svhn", 10, (3, 32, 32), *holdout(73_257, 26_032), read_svhn, _torchvision_download("SVHN", split=True),
                "train_32x32.mat", "SVHN cropped digits (train and test; label 10 read as 0)"),
    DatasetSpec("fashion_mnist", 10, (1, 28, 28), *holdout(60_000, 10_000), read_fashion_mnist,
                _torchvision_download("FashionMNIST"), "FashionMNIST", "Fashion-MNIST, 28x28 grey"),
    DatasetSpec("synthetic", 10, (3, 32, 32), 640, 200, None, None, "",
                "a small learnable CIFAR-shaped set built in memory (tests; no files)"),
):
    register_dataset(_spec)
del _spec


# --- any source -----------------------------------------------------------------------------------------

def read_npz(p: Path) -> tuple:
    """x_train, y_train, x_test, y_test from an .npz (the format of ../shared/data/cifar10-jpeg75.npz)."""
    if not p.exists():
        raise DataError(f"data file {str(p)!r} does not exist; pass --data with an existing .npz or folder")
    try:
        with np.load(p, allow_pickle=False) as f:
            keys = set(f.files)
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in keys]
            if missing:
                raise DataError(f"{p}: missing arrays {missing}; an initmem .npz needs x_train, y_train, "
                                f"x_test, y_test (found {sorted(keys)})")
            return tuple(f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except DataError:
        raise
    except Exception as e:  # not a zip, truncated, pickled objects, ...
        raise DataError(f"{p}: not a readable .npz file ({type(e).__name__}: {e})") from None


def check_arrays(spec: DatasetSpec, where, x_train, y_train, x_test, y_test) -> None:
    """The arrays have the dataset's image shape (HWC), uint8 pixels and labels 0..classes-1."""
    c, h, w = spec.image_shape
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.ndim != 4 or x.shape[1:] != (h, w, c):
            raise DataError(f"{where}: x_{name} has shape {x.shape}; expected (N, {h}, {w}, {c}) HWC images "
                            f"(dataset {spec.name!r})")
        if x.dtype != np.uint8:
            raise DataError(f"{where}: x_{name} has dtype {x.dtype}; expected uint8 pixels 0-255")
        if y.shape != (len(x),):
            raise DataError(f"{where}: y_{name} has shape {y.shape}; expected ({len(x)},) labels")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{where}: y_{name} has dtype {y.dtype}; expected integer labels")
        if len(y) and (y.min() < 0 or y.max() >= spec.classes):
            raise DataError(f"{where}: y_{name} has labels in [{y.min()}, {y.max()}]; expected 0-{spec.classes - 1} "
                            f"(dataset {spec.name!r})")
    if len(x_train) < 10:
        raise DataError(f"{where}: x_train has {len(x_train)} images; need at least 10 to split off validation")


def read_source(spec: DatasetSpec, where: Path, download: bool = False) -> tuple:
    """The four arrays of a dataset from an .npz or a folder in its format (downloaded first when asked
    and missing), checked against the spec."""
    if where.suffix == ".npz" or where.is_file():
        arrays = read_npz(where)
    else:
        if download and spec.download is not None and not (where / spec.marker).exists():
            try:
                spec.download(where)
            except Exception as e:  # network failures
                raise DataError(f"could not download {spec.name} into {where} ({type(e).__name__}: {e}); pass --data "
                                "with a local copy") from None
        if spec.marker and not (where / spec.marker).exists():
            raise DataError(f"{where}: no {spec.name} here (expected {spec.marker} from torchvision's download). Pass "
                            f"--data with an .npz or a folder holding it, or use --download with internet access.")
        arrays = spec.read(where)
    arrays = tuple(np.asarray(a) for a in arrays)
    check_arrays(spec, where, *arrays)
    return arrays


def default_path(name: str) -> str | None:
    """Where a dataset is found without --data: $INITMEM_DATA for cifar10 (then its cache folder), the
    cache folder for the others, None if nothing is there."""
    if name == "cifar10" and os.environ.get("INITMEM_DATA"):
        return os.environ["INITMEM_DATA"]
    spec = DATASETS[name]
    folder = spec.default_folder()
    return str(folder) if spec.marker and (folder / spec.marker).exists() else None
