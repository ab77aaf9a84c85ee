"""The seed bootstrap: runs resampled with replacement within their (procedure, sigma_w) cell.

    python -m analysis.memory RESULTS --n-boot 1000      # spreads with these intervals

    from analysis.bootstrap import cells, draws
    order, start, size = cells(cell_id)                   # the runs sorted by cell
    for idx in draws(start, size, n_boot=1000, rng=np.random.default_rng(0)):
        ...                                               # (replicates, runs) positions in that order

Every interval initmem prints (spreads, the paper check's accuracies, the collapse score) comes
from this one draw: replicate r takes, for slot i of cell c, the run start_c + floor(U_ri * n_c),
U uniform on [0, 1). The draws come in blocks of replicates (the same numbers as one big draw:
the generator fills them in order), so a million-run study never holds all replicates at once.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

BLOCK = 256  # replicates per block of draws


def cells(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, start, size): the stable order that sorts runs by cell, and each cell's first
    position and number of runs in that order."""
    order = np.argsort(np.asarray(cell), kind="stable")
    sc = np.asarray(cell)[order]
    start = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]]) if len(sc) else np.zeros(0, np.int64)
    size = np.diff(np.r_[start, len(sc)])
    return order, start, size


def draws(start: np.ndarray, size: np.ndarray, n_boot: int, rng: np.random.Generator,
          block: int = BLOCK) -> Iterator[np.ndarray]:
    """Blocks of (replicates, runs) resampled positions, runs in cell order: slot i of a cell draws
    uniformly among that cell's runs."""
    slot_start, slot_size = np.repeat(start, size), np.repeat(size, size)
    n = len(slot_start)
    for b0 in range(0, n_boot, block):
        nb = min(block, n_boot - b0)
        yield slot_start + (rng.random((nb, n)) * slot_size).astype(np.int64)


def cell_means(v: np.ndarray, start: np.ndarray, size: np.ndarray, n_boot: int,
               rng: np.random.Generator) -> np.ndarray:
    """(n_boot, cells) bootstrap means of v (runs in cell order)."""
    return np.concatenate([np.add.reduceat(v[idx], start, axis=1) / size
                           for idx in draws(start, size, n_boot, rng)]) if n_boot else np.zeros((0, len(start)))


def sigma_boot(v: np.ndarray, sigma: np.ndarray, n_boot: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sigmas, means, boot): the sorted sigma_w cells of one procedure's runs, the mean of `v` in
    each and its (n_boot, cells) bootstrap means (seeds resampled within each cell). Non-finite
    values are left out first. A statistic over sigma (min, a difference of two cells) takes its
    interval from the same rows of `boot`."""
    v, sigma = np.asarray(v, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    ok = np.isfinite(v)
    v, sigma = v[ok], sigma[ok]
    su, cell = np.unique(np.round(sigma, 9), return_inverse=True)
    means = np.bincount(cell, v, minlength=len(su)) / np.maximum(np.bincount(cell, minlength=len(su)), 1)
    order, start, size = cells(cell)
    return su, means, cell_means(v[order], start, size, n_boot, rng)


def multiplicities(cell: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(1 + n_boot, runs) how often each run is drawn per replicate; row 0 is the data (all ones).
    Runs in their given order (the weights of a weighted refit)."""
    order, start, size = cells(cell)
    R = len(order)
    W = np.ones((1 + n_boot, R))
    row = 1
    for idx in draws(start, size, n_boot, rng):
        nb = idx.shape[0]
        key = (np.arange(nb)[:, None] * R + order[idx]).ravel()
        W[row:row + nb] = np.bincount(key, minlength=nb * R).reshape(nb, R)
        row += nb
    return W
