"""Data for packed training: the seed-42 split, device-resident tensors, per-run batches.

    python -m initmem train --data ../shared/data/cifar10-jpeg75.npz ...

    from initmem.data import load_splits
    splits = load_splits(path="../shared/data/cifar10-jpeg75.npz", train_subset=2000)
    dev = splits.to("cpu", torch.float32)          # [0,1] floats, held once on the device

The datasets and their on-disk formats are initmem/datasets.py (a registry). Sources, in the order
`resolve_data_path` tries them:
  1. an explicit path: an .npz with x_train/y_train/x_test/y_test (HWC uint8), or a folder in
     torchvision's format for the dataset (CIFAR-10: the one holding `cifar-10-batches-py`);
  2. for CIFAR-10, the environment variable INITMEM_DATA (same two kinds);
  3. the dataset's folder under ~/.cache/initmem/<dataset>, downloaded there when `download=True`.
`dataset="synthetic"` builds a small learnable set in memory (tests, smoke runs without data).

Split (SPEC Section 3): validation = RandomState(42).permutation(N)[:N // 5] of the training
images (N = 50,000 gives the paper's 10,000), train = the rest in permutation order. Subsets take
the first images of each split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from initmem.datasets import DATASETS, DataError, default_path, read_source  # noqa: F401  DataError: raised here too
from initmem.provenance import data_id

ENV_VAR = "INITMEM_DATA"
NUM_CLASSES = 10  # the synthetic set's classes


@dataclass
class Splits:
    """The three splits as tensors: x (N, 3, 32, 32) uint8 on the CPU, y (N,) int64."""
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str = ""
    data_id: str = ""   # content id of what was read (initmem.provenance.data_id)

    def to(self, device: str | torch.device, dtype: torch.dtype = torch.float32) -> "Splits":
        """Scale pixels to [0, 1] and move everything to the device once (shared by a pack)."""
        conv = (lambda x: x.to(device=device, dtype=dtype).div_(255.0))
        return Splits(conv(self.x_train), self.y_train.to(device), conv(self.x_val), self.y_val.to(device),
                      conv(self.x_test), self.y_test.to(device), self.source, self.data_id)

    def subset(self, train: int = 0, evaluation: int = 0) -> "Splits":
        t = train or len(self.y_train)
        v = evaluation or len(self.y_val)
        s = evaluation or len(self.y_test)
        if t > len(self.y_train):
            raise DataError(f"train_subset={train} is larger than the train split ({len(self.y_train)} images)")
        if v > len(self.y_val) or s > len(self.y_test):
            raise DataError(f"eval_subset={evaluation} is larger than the validation ({len(self.y_val)}) "
                            f"or test ({len(self.y_test)}) split")
        return Splits(self.x_train[:t], self.y_train[:t], self.x_val[:v], self.y_val[:v],
                      self.x_test[:s], self.y_test[:s], self.source, self.data_id)


def resolve_data_path(path: str | os.PathLike | None = None, dataset: str = "cifar10") -> str | None:
    """Where load_splits would read a dataset: path, else its default (initmem.datasets.default_path:
    $INITMEM_DATA for cifar10, then the cache folder), None when there is nothing."""
    return str(path) if path else default_path(dataset)


def load_splits(dataset: str = "cifar10", path: str | os.PathLike | None = None, train_subset: int = 0,
                eval_subset: int = 0, download: bool = False) -> Splits:
    """Load, split and subset a registered dataset (initmem.datasets). Raises DataError with a fix."""
    spec = DATASETS[dataset]
    if spec.read is None:  # built in memory (synthetic)
        return synthetic_splits(train_subset or spec.train_size, eval_subset or spec.eval_size)
    where = resolve_data_path(path, dataset)
    if where is None:
        if not download or spec.download is None:
            env = f", set {ENV_VAR}=PATH" if dataset == "cifar10" else ""
            raise DataError(
                f"{dataset} not found. Pass --data PATH (an .npz with x_train/y_train/x_test/y_test, or a folder in "
                f"torchvision's format for {dataset}){env}, or allow a download with --download "
                f"(into {spec.default_folder()}).")
        where = str(spec.default_folder())
    p = Path(where).expanduser()
    splits = split(*read_source(spec, p, download), source=str(p))
    splits.data_id = data_id(p)
    return splits.subset(train_subset, eval_subset)


def split(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
          source: str = "") -> Splits:
    """HWC uint8 arrays -> Splits with the seed-42 validation hold-out."""
    n = len(x_train)
    perm = np.random.RandomState(42).permutation(n)
    val, train = perm[: n // 5], perm[n // 5:]
    chw = (lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    lab = (lambda y: torch.from_numpy(np.asarray(y, dtype=np.int64)))
    return Splits(chw(x_train[train]), lab(y_train[train]), chw(x_train[val]), lab(y_train[val]),
                  chw(x_test), lab(y_test), source)


def synthetic_splits(n_train: int = 640, n_eval: int = 200, seed: int = 0) -> Splits:
    """A learnable CIFAR-shaped set: a fixed random template per class plus pixel noise.

    Deterministic (numpy RandomState), so every process builds the same set.
    """
    rng = np.random.RandomState(seed)
    templates = rng.uniform(0, 255, size=(NUM_CLASSES, 32, 32, 3))

    def make(n: int):
        y = rng.randint(0, NUM_CLASSES, size=n)
        x = 0.5 * templates[y] + rng.uniform(0, 127.5, size=(n, 32, 32, 3))
        return x.clip(0, 255).astype(np.uint8), y.astype(np.int64)

    chw = (lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    parts = [make(n) for n in (n_train, n_eval, n_eval)]
    return Splits(*[t for x, y in parts for t in (chw(x), torch.from_numpy(y))], source="synthetic",
                  data_id=data_id(None, seed))


# --- per-run batches -------------------------------------------------------------------------

def run_generators(seeds, stream: int) -> list[torch.Generator]:
    """One CPU generator per run for a named stream (0 = init, 1 = data order and augmentation).

    Streams come from numpy's SeedSequence so they are independent for the same seed.
    """
    gens = []
    for s in seeds:
        g = torch.Generator()
        g.manual_seed(int(np.random.SeedSequence([int(s), stream]).generate_state(1, np.uint64)[0] >> 1))
        gens.append(g)
    return gens


def epoch_order(n: int, gens: list[torch.Generator]) -> torch.Tensor:
    """Each run's shuffled train indices for one epoch: (M, n) int64 on the CPU."""
    return torch.stack([torch.randperm(n, generator=g) for g in gens])


def augment_draws(gens: list[torch.Generator], sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmentation draws of consecutive batches of `sizes` images, for all of them at once: flips
    (M, N) bool and crop offsets (M, N, 2) int64 on the CPU, N = sum(sizes).  Each run's generator is
    drawn from batch by batch exactly as augment() draws one batch (rand(b), then randint(b, 2)), so
    an epoch drawn at its start holds the numbers augment() would have drawn step by step."""
    flips, offs = [], []
    for g in gens:
        draws = [(torch.rand(b, generator=g) < 0.5, torch.randint(0, 9, (b, 2), generator=g)) for b in sizes]
        flips.append(torch.cat([f for f, _ in draws]))
        offs.append(torch.cat([o for _, o in draws]))
    return torch.stack(flips), torch.stack(offs)


def augment(x: torch.Tensor, gens: list[torch.Generator] | None = None,
            draws: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Random flip (p=0.5), 4-pixel reflect padding, random 32x32 crop; per run, per image.

    x: (M, B, C, H, W) on any device.  draws: (flips (M, B), offsets (M, B, 2)) from augment_draws,
    already on x's device (train_epoch draws an epoch at once and copies it once); without them,
    this batch's draws come from each run's CPU generator in `gens` (and are copied to the device).
    """
    m, b, c, h, w = x.shape
    if draws is None:
        draws = tuple(d.to(x.device) for d in augment_draws(gens, [b]))
    flip, off = draws[0].reshape(m * b, 1, 1, 1), draws[1].reshape(m * b, 2)
    flat = x.reshape(m * b, c, h, w)
    flat = torch.where(flip, flat.flip(-1), flat)
    padded = torch.nn.functional.pad(flat, (4, 4, 4, 4), mode="reflect")
    rows = (off[:, 0:1] + torch.arange(h, device=x.device)).view(m * b, 1, h, 1)
    cols = (off[:, 1:2] + torch.arange(w, device=x.device)).view(m * b, 1, 1, w)
    n_idx = torch.arange(m * b, device=x.device).view(m * b, 1, 1, 1)
    c_idx = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[n_idx, c_idx, rows, cols].view(m, b, c, h, w)
