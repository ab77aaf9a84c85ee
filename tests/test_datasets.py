"""initmem.datasets: every registered dataset read from tiny files written in its real on-disk format
(no network), split as the paper splits CIFAR-10, and trained on by the packed networks."""

import pickle
import struct

import numpy as np
import pytest
import torch

from initmem.config import ConfigError, RunConfig
from initmem.data import DataError, load_splits
from initmem.datasets import DATASETS
from initmem.train import train_pack


def _images(n, h, w, c, seed):
    return np.random.RandomState(seed).randint(0, 256, size=(n, h, w, c)).astype(np.uint8)


def write_cifar(folder, sub, train_names, test_name, label_key, n_per, classes):
    base = folder / sub
    base.mkdir(parents=True)
    truth = {}
    for i, name in enumerate(train_names + [test_name]):
        x = _images(n_per, 32, 32, 3, i)
        y = np.random.RandomState(100 + i).randint(0, classes, size=n_per)
        with open(base / name, "wb") as f:  # the python batches: rows of 3072 bytes, CHW order
            pickle.dump({"data": x.transpose(0, 3, 1, 2).reshape(n_per, -1), label_key: y.tolist()}, f)
        truth[name] = (x, y)
    return truth


def write_idx(path, array):
    """The idx format of (Fashion-)MNIST: magic (0, 0, 0x08 = ubyte, ndim), big-endian dims, then bytes."""
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def test_cifar10_and_cifar100_folders(tmp_path):
    t10 = write_cifar(tmp_path / "c10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                      "labels", 10, 10)
    s = load_splits("cifar10", tmp_path / "c10")
    x_all = np.concatenate([t10[f"data_batch_{i}"][0] for i in range(1, 6)])
    perm = np.random.RandomState(42).permutation(50)          # SPEC: val = the first N // 5 of the permutation
    assert torch.equal(s.x_val, torch.from_numpy(x_all[perm[:10]].transpose(0, 3, 1, 2)))
    assert torch.equal(s.x_test, torch.from_numpy(t10["test_batch"][0].transpose(0, 3, 1, 2)))
    assert len(s.y_train) == 40
    t100 = write_cifar(tmp_path / "c100", "cifar-100-python", ["train"], "test", "fine_labels", 30, 100)
    s = load_splits("cifar100", tmp_path / "c100")
    assert s.y_test.tolist() == t100["test"][1].tolist() and s.x_train.shape == (24, 3, 32, 32)
    with pytest.raises(DataError, match="no cifar100 here.*cifar-100-python"):
        load_splits("cifar100", tmp_path / "c10")               # the wrong dataset's folder


def test_svhn_mat_files(tmp_path):
    from scipy.io import savemat
    for name, n, seed in (("train_32x32.mat", 20, 0), ("test_32x32.mat", 7, 1)):
        x = _images(n, 32, 32, 3, seed)
        y = np.arange(n) % 10 + 1                               # SVHN labels 1..10, 10 standing for the digit 0
        savemat(tmp_path / name, {"X": x.transpose(1, 2, 3, 0), "y": y.reshape(-1, 1)})
    s = load_splits("svhn", tmp_path)
    assert s.y_test.tolist() == [(i % 10 + 1) % 10 for i in range(7)]     # 10 read as 0
    assert s.x_test.shape == (7, 3, 32, 32) and s.y_train.max() <= 9 and len(s.y_val) == 4


def test_fashion_mnist_idx_files_and_a_grey_28px_network(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n, seed in (("train", 40, 0), ("t10k", 12, 1)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", _images(n, 28, 28, 1, seed)[..., 0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    s = load_splits("fashion_mnist", tmp_path)
    assert s.x_train.shape == (32, 1, 28, 28) and s.y_test.tolist() == [i % 10 for i in range(12)]
    assert len(s.y_val) == 8 and len(s.y_test) == 12
    run = RunConfig(dataset="fashion_mnist", width=0.0625, train_subset=32, eval_subset=8, batch_size=16, epochs=1,
                    augment=True, precision="fp64")
    rows = train_pack([run], load_splits("fashion_mnist", tmp_path, 32, 8), log=None)
    assert rows[0]["status"] == "completed" and 0 <= rows[0]["test_acc"] <= 1


def test_a_hundred_classes_reach_the_head():
    from initmem.models import build_model
    net = build_model(RunConfig(dataset="cifar100", width=0.0625), 2)
    net.init_([1.0, 2.0], [torch.Generator().manual_seed(s) for s in (0, 1)])
    assert net(torch.rand(2, 3, 3, 32, 32)).shape == (2, 3, 100)


def test_sizes_and_limits_are_the_datasets():
    assert {n: (DATASETS[n].train_size, DATASETS[n].eval_size) for n in ("cifar10", "svhn", "fashion_mnist")} == \
        {"cifar10": (40_000, 10_000), "svhn": (58_606, 14_651), "fashion_mnist": (48_000, 10_000)}
    assert RunConfig(dataset="svhn").n_train == 58_606 and RunConfig(dataset="synthetic", train_subset=5000).n_train == 5000
    with pytest.raises(ConfigError, match="train_subset=50000 is not allowed: .*48000 for fashion_mnist"):
        RunConfig(dataset="fashion_mnist", train_subset=50_000)
    with pytest.raises(ConfigError, match=r"dataset='cifar1000' is not allowed: one of \['cifar10', .*did you mean"):
        RunConfig(dataset="cifar1000")


def test_an_npz_of_the_wrong_shape_names_the_dataset(tmp_path):
    x = _images(20, 32, 32, 3, 0)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.zeros(20, np.int64), x_test=x, y_test=np.zeros(20, np.int64))
    with pytest.raises(DataError, match=r"expected \(N, 28, 28, 1\) HWC images \(dataset 'fashion_mnist'\)"):
        load_splits("fashion_mnist", tmp_path / "d.npz")
