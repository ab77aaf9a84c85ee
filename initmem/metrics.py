"""Derived quantities of a run: forgetting clocks, kernel norms, tau_best / tau_interp, repair gap.

Pure functions (numpy / torch in, numbers out); train.py records them, analysis/ reuses them.

Clocks after K updates (SPEC Section 4), eta_k the scheduled lr of update k, b the batch size:
    T_SGD = (1/b) sum_{k<K} eta_k^2     T_L2 = l2 * sum_{k<K} eta_k     T_adapt = sum_{k<K} eta_k
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

INTERP_THRESHOLD = 0.995  # train accuracy that counts as interpolation (tau_interp)


def lr_schedule(k, total_steps: int, lr0: float = 1.0, alpha: float = 0.01, schedule: str = "cosine"):
    """eta_k = lr0 * [alpha + (1-alpha) * 0.5 * (1 + cos(pi * min(k,K)/K))] (cosine) or lr0.

    `k` may be an int or a numpy array of update indices; float64 throughout.
    """
    if schedule == "constant":
        return lr0 * np.ones_like(np.asarray(k, dtype=np.float64)) if np.ndim(k) else float(lr0)
    if schedule != "cosine":
        raise ValueError(f"schedule={schedule!r} is not allowed: one of ['cosine', 'constant']")
    if total_steps < 1:
        raise ValueError(f"total_steps={total_steps!r} is not allowed: an integer >= 1")
    frac = np.minimum(np.asarray(k, dtype=np.float64), total_steps) / total_steps
    out = lr0 * (alpha + (1.0 - alpha) * 0.5 * (1.0 + np.cos(np.pi * frac)))
    return out if np.ndim(k) else float(out)


def clocks(steps: Sequence[int] | np.ndarray, *, lr0: float, batch_size: int, total_steps: int,
           alpha: float = 0.01, schedule: str = "cosine", l2: float = 0.0) -> dict[str, np.ndarray]:
    """The three clocks (and the lr of the next update) after each entry of `steps` updates.

    Cumulative sums over the schedule: exact for any schedule, O(max(steps)) memory.
    """
    steps = np.asarray(steps, dtype=np.int64)
    n = int(steps.max()) if steps.size else 0
    if schedule == "constant":  # closed forms, no arrays of length K
        s1, s2 = lr0 * steps.astype(np.float64), lr0**2 * steps.astype(np.float64)
    else:
        eta = lr_schedule(np.arange(n), total_steps, lr0, alpha, schedule)
        c1 = np.concatenate([[0.0], np.cumsum(eta)])
        c2 = np.concatenate([[0.0], np.cumsum(eta * eta)])
        s1, s2 = c1[steps], c2[steps]
    return {"t_sgd": s2 / batch_size, "t_l2": l2 * s1, "t_adapt": s1,
            "lr": np.asarray(lr_schedule(steps, total_steps, lr0, alpha, schedule), dtype=np.float64)}


def kernel_norms(kernels: Sequence["torch.Tensor"]) -> "torch.Tensor":
    """Frobenius norm of each packed kernel (M, ...) per run -> (M, n_kernels), float64."""
    import torch  # here, not at the top: analysis/ uses the clocks without paying torch's import
    return torch.stack([k.detach().double().flatten(1).norm(dim=1) for k in kernels], dim=1)


def total_norm(per_kernel: torch.Tensor | np.ndarray):
    """||W||_F = sqrt(sum_l ||W_l||_F^2) along the last axis."""
    return (per_kernel ** 2).sum(-1) ** 0.5


def tau_best(val_loss: Sequence[float]) -> int | None:
    """argmin over epochs >= 1 of val loss (index = epoch; first epoch on ties; NaN ignored)."""
    v = np.asarray(val_loss, dtype=np.float64)[1:]
    if not np.isfinite(v).any():
        return None
    return int(np.nanargmin(np.where(np.isfinite(v), v, np.nan))) + 1


def tau_interp(train_acc: Sequence[float], threshold: float = INTERP_THRESHOLD) -> int | None:
    """First epoch >= 1 whose train accuracy reaches the threshold (None if never)."""
    a = np.asarray(train_acc, dtype=np.float64)
    hits = np.nonzero(a[1:] >= threshold)[0]
    return int(hits[0]) + 1 if hits.size else None


def summarize(history: dict[str, Sequence[float]]) -> dict[str, float | int | None]:
    """Selection summary of one run from its per-epoch history (lists indexed by epoch)."""
    tb = tau_best(history["val_loss"])
    ti = tau_interp(history["train_acc"])
    last = len(history["val_loss"]) - 1
    at = (lambda key, e: None if e is None else float(history[key][e]))
    val_best, val_interp = at("val_acc", tb), at("val_acc", ti)
    return {
        "tau_best": tb, "tau_interp": ti,
        "test_acc": at("test_acc", tb), "test_loss": at("test_loss", tb),
        "val_acc_best": val_best, "val_loss_best": at("val_loss", tb),
        "val_acc_interp": val_interp,
        "repair_gap": None if val_best is None or val_interp is None else val_best - val_interp,
        "train_acc_final": at("train_acc", last), "train_acc_best": at("train_acc", tb),
        "w_norm_init": at("w_norm", 0), "w_norm_best": at("w_norm", tb), "w_norm_final": at("w_norm", last),
    }

