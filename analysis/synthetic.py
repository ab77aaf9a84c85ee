"""Synthetic results in exactly the Parquet contract (docs/results.md), with planted effects.

    python bench/synthetic_results.py OUT --experiment main_grid [--beta-mode clock|epoch] [--mem paper|none]

    from analysis.synthetic import write_synthetic, synthetic_frames, Plant
    truth = write_synthetic("out/syn", "main_grid")                  # 6,250 runs x 301 epochs, a few s
    runs, epochs, truth = synthetic_frames("main_grid", seeds=[0, 1], sigmas=[0.1, 1.0, 2.5])

The core lives here (importable by tests); bench/synthetic_results.py is its command line.
Grids are the catalogue's (initmem.study.EXPERIMENTS) and can be cut (sigmas, seeds, batch sizes,
optimizers, epochs); an experiment added to the catalogue is generated with no edit here.

The planted model, per procedure P (all config but sigma_w and seed) and epoch t:

    val_acc(t, sigma, seed) = level(t) + beta_P(t) * (sigma - mean sigma) + seed offset + noise
    test_acc(t, ...)        = val_acc(t, ...) - 0.005 + independent noise
    val_loss(t)             = run offset + 0.8 * ((t - tau*_P) / E)^2      -> tau_best = tau*_P exactly
    beta_P(t) = -B_opt * (floor + (1 - floor) * phi(t)),  phi(t) = exp(-u(t))
    u(t) = clock(t) / tau[clock]   (beta_mode="clock": the optimizer's own clock, T_SGD for sgd and
                                    sgd_momentum, T_L2 for sgd with l2 > 0, T_adapt for adam-family)
    u(t) = t / tau_epoch           (beta_mode="epoch")

so |beta_P| collapses on the clock (or on epochs) across batch sizes, by construction. With `mem`
given (a dict, a function, or "paper"), each procedure's spread at tau_best is exactly the planted
number of pp, b*_P = -mem_P / 100 / (max sigma - min sigma), and the collapse is kept:
  - beta_mode="clock": one curve g_F of the own clock T per family F (a procedure minus its batch
    size and epochs), through the points (T_P(tau*_P), b*_P) of its procedures, linear in log10 T
    between them, flat after the last, and before the first the decay shape above rescaled from
    -B_opt at T = 0 to the first point; beta_P(t) = g_F(T_P(t)). Every batch size lies on g_F (it
    collapses on the clock) and reaches its own point of it at its tau* (its spread). g_F need not
    be monotone: the paper's spreads put Adam's b=16 point (early tau*, T_adapt ~ 15, 1.6 pp) below
    b=128's (T_adapt ~ 45, 4.3 pp). A family member without a planted spread reads its spread off g_F.
  - beta_mode="epoch": each procedure on its own, rescaled between B_opt and b*_P,
    beta_P(t) = b* + (B_opt - b*) (phi(t) - phi(tau*)) / (1 - phi(tau*)) for t <= tau*, b* after
    (procedures that share tau* but not a spread cannot lie on one curve of epochs).
`truth` holds what was planted: per procedure its spread (pp) and tau*, per (procedure, epoch) beta.
Seed noise enters the recovered numbers; with noise=0 they are exact.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from initmem.config import RunConfig, pack_id
from initmem.metrics import clocks, summarize
from initmem.results import EPOCHS_SCHEMA, RUNS_SCHEMA, to_pandas
from initmem.optimizers import OPTIMIZERS, own_clock
from initmem.study import EXPERIMENTS



# The paper's main-grid spreads (pp) at the batch sizes it does not quote, interpolated so that
# mem="paper" gives a report that reads like the paper; the quoted numbers come from
# analysis.paper_check.CLAIMS (the one place they live).
PAPER_MEM_INTERPOLATED = {
    "sgd": {32: 24.0, 64: 25.3},
    "sgd_momentum": {32: 15.0, 64: 20.0, 128: 24.5, 256: 25.0},
    "adam": {32: 2.3, 64: 3.2},
    "adamw": {16: 1.8, 32: 2.5, 64: 3.5, 256: 5.6},
    "muon": {16: 1.5, 32: 2.2, 64: 3.0, 256: 5.0},
}
N_KERNELS = 9  # ResNet-9: prep, layer1 conv + 2 residual, layer2 conv, layer3 conv + 2 residual, dense


@dataclasses.dataclass(frozen=True)
class Plant:
    """What the generator plants. Units: accuracies as fractions, beta in fraction per unit sigma_w."""
    beta_mode: str = "clock"                  # "clock" | "epoch": what |beta| decays on
    mem: object = None                        # None | "paper" | {(optimizer, batch_size): pp} | f(config) -> pp
    paper_shift: float = 0.0                  # pp, with mem="paper": spreads + shift, accuracies - shift
    b0: Mapping[str, float] = dataclasses.field(default_factory=lambda: {
        "sgd": 0.12, "sgd_momentum": 0.10, "adam": 0.10, "adamw": 0.10, "muon": 0.10, "muon_conv": 0.10})
    floor: float = 0.02                       # |beta| floor as a fraction of B_opt
    tau: Mapping[str, float] = dataclasses.field(default_factory=lambda: {
        "t_sgd": 0.01, "t_l2": 1.0, "t_adapt": 20.0})
    tau_epoch: float = 60.0                   # epochs (beta_mode="epoch")
    noise: float = 0.004                      # iid per (run, epoch) accuracy noise (fraction)
    seed_noise: float = 0.004                 # per-run offset, constant over epochs (fraction)
    level: float = 0.80                       # final mean val accuracy (fraction)
    n_diverged: int = 0                       # runs per experiment made to diverge
    seed: int = 0                             # RNG seed of the generator


def grid(experiment: str, *, sigmas: Sequence[float] | None = None, seeds: Sequence[int] | None = None,
         batch_sizes: Sequence[int] | None = None, optimizers: Sequence[str] | None = None,
         epochs: int | None = None, **config) -> list[RunConfig]:
    """The full preset's runs of a catalogue experiment (initmem.study.EXPERIMENTS), optionally cut:
    sigmas / seeds / batch_sizes / optimizers replace those axes (or select the grids whose fixed value
    is among them), `epochs` and `config` set fields on every run."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"experiment={experiment!r} is not allowed: one of {list(EXPERIMENTS)}")
    cut = {k: v for k, v in (("sigma_w", sigmas), ("seed", seeds), ("batch_size", batch_sizes),
                             ("optimizer", optimizers)) if v is not None}
    overrides = {**config, **({"epochs": epochs} if epochs is not None else {})}
    return EXPERIMENTS[experiment].restrict(**cut).runs("full", overrides)


def paper_targets(cfg: RunConfig, shift: float = 0.0) -> dict:
    """What mem="paper" plants for a procedure (pp): 'mem' and, where the paper quotes accuracies,
    'acc_min' (seed-mean test accuracy at the smallest sigma) and 'train_shift'. From
    analysis.paper_check.CLAIMS; the paper's rounded numbers are reconciled (85.0 - 58.6 = 26.4 but
    the spread is 26.5: the spread is planted exactly and the two accuracies move by half the gap
    each, 85.05 and 58.55, within the quoted digit). `shift` moves
    every planted number away from the paper's: spreads up, accuracies down."""
    from analysis.paper_check import claims_for
    cs = claims_for(cfg)
    # an estimate of the spread; with two sigmas, Table 7's |Delta| is the spread
    mem = next((c.paper for c in cs if c.kind in ("spread", "delta") and c.bound is None), None)
    below = next((c.paper for c in cs if c.kind == "spread" and c.bound in ("<", "<=")), None)
    acc = {c.sigma: c.paper for c in cs if c.kind == "acc"}
    out: dict = {}
    if acc:
        a0, a1 = acc.get(min(acc)), acc.get(max(acc)) if len(acc) > 1 else None
        if a1 is not None and mem is not None:  # the spread stays exact; the accuracies take half the gap each
            a0 = a0 + (mem - (a0 - a1)) / 2
        elif a1 is not None:
            mem = a0 - a1
        out["acc_min"] = a0 - shift
    if mem is None and below is not None:
        mem = below / 2
    if mem is None and cfg.experiment == "main_grid":
        mem = PAPER_MEM_INTERPOLATED.get(cfg.optimizer, {}).get(cfg.batch_size)
    if mem is not None:
        out["mem"] = mem + shift
    if any(c.kind == "train_min" for c in cs):
        out["train_shift"] = shift
    return out


def _planted_mem(plant: Plant, cfg: RunConfig) -> float | None:
    if plant.mem is None:
        return None
    if plant.mem == "paper":
        return paper_targets(cfg, plant.paper_shift).get("mem")
    if callable(plant.mem):
        return plant.mem(cfg)
    return plant.mem.get((cfg.optimizer, cfg.batch_size))


def _tau_star(cfg: RunConfig) -> int:
    """Planted best-val-loss epoch: the last one for SGD-like runs, early for small-batch Adam."""
    E = cfg.epochs
    if OPTIMIZERS[cfg.optimizer].adaptive:
        return min(E, 6) if cfg.batch_size <= 64 else max(1, round(0.7 * E))
    return E


def _clock_table(cfg: RunConfig) -> dict[str, np.ndarray]:
    """Per-epoch step, lr and clocks of a procedure, from initmem.metrics.clocks (never re-derived)."""
    steps = np.arange(cfg.epochs + 1, dtype=np.int64) * cfg.steps_per_epoch
    c = clocks(steps, lr0=cfg.lr0, batch_size=cfg.batch_size, total_steps=cfg.total_steps,
               alpha=cfg.alpha, schedule=cfg.schedule, l2=cfg.l2)
    return {"step": steps, **c}


def _beta_curve(plant: Plant, cfg: RunConfig, clk: dict[str, np.ndarray], sig_range: float,
                knots: np.ndarray | None = None) -> np.ndarray:
    """Planted beta(t) of one procedure, t = 0..E (fraction per unit sigma_w). `knots`: its family's
    (own clock at tau*, beta at tau*) points (_family_knots), with beta_mode="clock" and planted spreads."""
    E = cfg.epochs
    if plant.beta_mode == "clock":
        name = own_clock(cfg.optimizer, cfg.l2)
        u = clk[name] / plant.tau[name]
    elif plant.beta_mode == "epoch":
        u = np.arange(E + 1) / plant.tau_epoch
    else:
        raise ValueError(f"beta_mode={plant.beta_mode!r} is not allowed: 'clock' or 'epoch'")
    phi = np.exp(-u)
    B = plant.b0.get(cfg.optimizer, 0.1)
    if knots is not None and len(knots):
        return _family_curve(clk[name], -B, knots, plant.tau[name])
    mem = _planted_mem(plant, cfg)
    if mem is None:
        return -B * (plant.floor + (1.0 - plant.floor) * phi)
    ts = _tau_star(cfg)
    bstar = -mem / 100.0 / sig_range
    den = 1.0 - phi[ts]
    frac = (phi - phi[ts]) / den if den > 1e-12 else np.zeros_like(phi)
    beta = bstar + (-B - bstar) * frac
    beta[ts:] = bstar
    return beta


def _family_curve(T: np.ndarray, start: float, knots: np.ndarray, tau: float) -> np.ndarray:
    """One curve of the own clock T for a whole family: `start` at T = 0, the decay shape of the
    unplanted model (exp(-T / tau)) rescaled to reach the first knot, then linear in log10 T through
    every knot (a batch size's (T*, beta*) point: its planted spread at its tau*), flat after the
    last. A procedure's curve is this function at its own clock values, so every batch size of the
    family lies on it (collapse on the clock) and each reaches its own knot at its tau* (its spread)."""
    t1, b1 = knots[0]
    beta = np.empty_like(T, dtype=np.float64)
    low = T <= t1
    phi, phi1 = np.exp(-T[low] / tau), math.exp(-t1 / tau)
    den = 1.0 - phi1
    beta[low] = b1 + (start - b1) * ((phi - phi1) / den if den > 1e-12 else 0.0)
    beta[~low] = np.interp(np.log10(T[~low]), np.log10(knots[:, 0]), knots[:, 1])
    return beta


def _family_knots(plant: Plant, procedures: list[list[RunConfig]]) -> dict[tuple, np.ndarray]:
    """Per family (a procedure minus batch size and epochs: a preset may scale epochs with b, the
    clock accounts for it) the sorted (T*, beta*) points of its procedures that have a planted
    spread; only with beta_mode="clock" (on epochs, procedures sharing tau* but not a spread cannot
    lie on one curve, so each keeps its own rescaling). Points at the same T* are averaged."""
    if plant.beta_mode != "clock" or plant.mem is None:
        return {}
    pts: dict[tuple, list[tuple[float, float]]] = {}
    for members in procedures:
        cfg = members[0]
        mem = _planted_mem(plant, cfg)
        if mem is None:
            continue
        sig = [r.sigma_w for r in members]
        T = _clock_table(cfg)[own_clock(cfg.optimizer, cfg.l2)][_tau_star(cfg)]
        if T > 0:
            pts.setdefault(_family_key(cfg), []).append((float(T), -mem / 100.0 / max(max(sig) - min(sig), 1e-12)))
    out = {}
    for key, p in pts.items():
        k = pd.DataFrame(p, columns=["T", "beta"]).groupby("T", sort=True)["beta"].mean()
        out[key] = np.column_stack([k.index.to_numpy(), k.to_numpy()])
    return out


FAMILY_SKIP = ("sigma_w", "seed", "batch_size", "epochs")


def _family_key(cfg: RunConfig) -> tuple:
    return tuple(getattr(cfg, f.name) for f in dataclasses.fields(RunConfig) if f.name not in FAMILY_SKIP)


def _pack(plant: Plant, runs: list[RunConfig], rng: np.random.Generator, diverge: set[int],
          versions: dict, knots: np.ndarray | None = None) -> tuple[pa.Table, pa.Table, dict, pd.DataFrame]:
    """Runs table, epochs table and truth of one procedure (its runs differ in sigma_w and seed)."""
    cfg0 = runs[0]
    E = cfg0.epochs
    T = E + 1
    R = len(runs)
    clk = _clock_table(cfg0)
    sig = np.array([r.sigma_w for r in runs])
    sig_range = max(float(sig.max() - sig.min()), 1e-12)  # spread is over this procedure's sigma set
    beta = _beta_curve(plant, cfg0, clk, sig_range, knots)
    ts = _tau_star(cfg0)
    t = np.arange(T, dtype=np.float64)

    # accuracies (fractions): level + beta * centred sigma + seed offset + noise
    target = paper_targets(cfg0, plant.paper_shift) if plant.mem == "paper" else {}
    L = plant.level
    if "acc_min" in target:  # the level that puts the seed-mean test accuracy at min sigma on target
        e = math.exp(-ts / 3.0)
        at_ts = target["acc_min"] / 100 + 0.005 - beta[ts] * (sig.min() - sig.mean())
        L = (at_ts - 0.35 * e) / (1.0 - e)
    level = L - (L - 0.35) * np.exp(-t / 3.0)
    dsig = (sig - sig.mean())[:, None]
    offset = rng.normal(0.0, plant.seed_noise, size=(R, 1))
    val_acc = level[None, :] + beta[None, :] * dsig + offset + rng.normal(0.0, plant.noise, size=(R, T))
    test_acc = val_acc - 0.005 + rng.normal(0.0, plant.noise, size=(R, T))
    val_acc, test_acc = np.clip(val_acc, 0.0, 1.0), np.clip(test_acc, 0.0, 1.0)

    # train accuracy: slower to interpolate at large sigma and batch for SGD
    c_fit = {"sgd": 14.0, "sgd_momentum": 9.0}.get(cfg0.optimizer, 5.0)
    r_fit = c_fit * (0.5 + sig) * math.sqrt(cfg0.batch_size / 128) * E / 300
    expo = np.exp(-t[None, :] / r_fit[:, None])
    train_acc = 1.0 - 0.9 * expo - target.get("train_shift", 0.0) / 100
    train_loss = 2.3 * expo + 0.005

    # weights: radial memory fades on the same decay as beta
    w0 = 25.0 * sig
    phi_w = np.abs(beta) / max(abs(beta[0]), 1e-12)
    w_norm = 30.0 + (w0[:, None] - 30.0) * phi_w[None, :]
    val_loss = 0.5 + 0.3 * sig[:, None] / 2.5 + 0.8 * ((t[None, :] - ts) / E) ** 2
    val_loss[:, 0] = 2.3 + 0.01 * sig
    pen = cfg0.l2 * w_norm[:, ts:ts + 1] ** 2  # constant per run: the penalty must not move tau_best
    val_loss_raw = val_loss.copy()
    val_loss = val_loss + pen
    test_loss = val_loss + 0.02

    # run lengths: divergence and early stopping cut rows
    last = np.full(R, E, dtype=np.int64)
    status = np.array(["completed"] * R, dtype=object)
    div_ep = np.full(R, -1, dtype=np.int64)
    stop_ep = np.full(R, -1, dtype=np.int64)
    if cfg0.patience and ts + cfg0.patience < E:
        last[:] = ts + cfg0.patience
        stop_ep[:] = ts + cfg0.patience
        status[:] = "early_stopped"
    for i in diverge:
        d = int(rng.integers(1, E + 1))
        last[i], div_ep[i], status[i], stop_ep[i] = d, d, "diverged", -1
        for arr in (train_loss, val_loss, val_loss_raw, test_loss):
            arr[i, d] = np.nan
        train_acc[i, d] = val_acc[i, d] = test_acc[i, d] = 0.1

    mask = t[None, :] <= last[:, None]  # rows that exist
    # summaries: initmem.metrics.summarize, as the trainer writes them, on each run's existing rows
    hist = {"val_loss": val_loss, "train_acc": train_acc, "val_acc": val_acc, "test_acc": test_acc,
            "test_loss": test_loss, "w_norm": w_norm}
    summaries = [summarize({k: h[i, :last[i] + 1] for k, h in hist.items()}) for i in range(R)]

    run_ids = [r.run_id for r in runs]
    pid = pack_id(runs)
    cfg_cols = {f.name: [getattr(r, f.name) for r in runs] for f in dataclasses.fields(RunConfig)}
    nullable = lambda a: pa.array(np.where(a >= 0, a, 0).astype(np.int32), mask=a < 0)  # noqa: E731
    cols = {
        "run_id": run_ids, **cfg_cols, "pack_id": [pid] * R, "status": list(status),
        "epochs_done": last.astype(np.int32), "diverged_epoch": nullable(div_ep),
        "stopped_epoch": nullable(stop_ep), **{k: [x[k] for x in summaries] for k in summaries[0]},
        "t_sgd": clk["t_sgd"][last], "t_l2": clk["t_l2"][last], "t_adapt": clk["t_adapt"][last],
        "n_params": np.full(R, 6_575_370, dtype=np.int64), "wall_time_s": last.astype(np.float64),
        "initmem_version": [versions["initmem"]] * R, "code_version": ["synthetic"] * R, "code_dirty": [False] * R,
        "data_id": ["synthetic:generator"] * R, "torch_version": ["synthetic"] * R,
        "device_name": ["synthetic"] * R, "updated_at": ["2026-01-01T00:00:00Z"] * R,
    }
    runs_tab = pa.Table.from_pydict({k: cols[k] for k in RUNS_SCHEMA.names}, schema=RUNS_SCHEMA)

    ri, ei = np.nonzero(mask)  # row-major: run by run, epoch ascending
    n = len(ri)
    frac = np.linspace(1.0, 2.0, N_KERNELS)
    frac = np.sqrt(frac / frac.sum())
    kn = (w_norm[ri, ei][:, None] * frac[None, :]).ravel()
    offsets = pa.array(np.arange(0, n * N_KERNELS + 1, N_KERNELS, dtype=np.int32))
    ids = pa.DictionaryArray.from_arrays(pa.array(ri.astype(np.int32)), pa.array(run_ids)).cast(pa.string())
    ecols = {
        "run_id": ids, "epoch": pa.array(ei.astype(np.int32)), "step": pa.array(clk["step"][ei]),
        "train_loss": train_loss[ri, ei], "train_acc": train_acc[ri, ei], "val_loss": val_loss[ri, ei],
        "val_loss_raw": val_loss_raw[ri, ei], "val_acc": val_acc[ri, ei], "test_loss": test_loss[ri, ei],
        "test_acc": test_acc[ri, ei], "lr": clk["lr"][ei], "t_sgd": clk["t_sgd"][ei],
        "t_l2": clk["t_l2"][ei], "t_adapt": clk["t_adapt"][ei], "w_norm": w_norm[ri, ei],
        "kernel_norms": pa.ListArray.from_arrays(offsets, pa.array(kn)), "wall_time": ei.astype(np.float64),
    }
    epochs_tab = pa.Table.from_pydict({k: ecols[k] for k in EPOCHS_SCHEMA.names}, schema=EPOCHS_SCHEMA)

    mem = _planted_mem(plant, cfg0)
    truth = {"pack_id": pid, "tau_star": ts, "clock": own_clock(cfg0.optimizer, cfg0.l2),
             "spread_pp": 100.0 * abs(beta[ts]) * sig_range, "mem_planted_pp": mem,
             "sigma_min": float(sig.min()), "sigma_max": float(sig.max())}
    beta_df = pd.DataFrame({"pack_id": pid, "epoch": np.arange(T, dtype=np.int32), "beta": beta})
    return runs_tab, epochs_tab, truth, beta_df


def generate(experiment: str | Sequence[str] = "main_grid", plant: Plant = Plant(),
             **grid_kw) -> Iterator[tuple[str, pa.Table, pa.Table, dict, pd.DataFrame]]:
    """Yield (pack_id, runs table, epochs table, truth row, beta frame) per procedure."""
    import initmem
    versions = {"initmem": getattr(initmem, "__version__", "0")}
    rng = np.random.default_rng(plant.seed)
    experiments = [experiment] if isinstance(experiment, str) else list(experiment)
    for exp in experiments:
        configs = grid(exp, **grid_kw)
        groups: dict[tuple, list[RunConfig]] = {}
        names = [f.name for f in dataclasses.fields(RunConfig) if f.name not in ("sigma_w", "seed")]
        for c in configs:
            key = tuple(getattr(c, k) for k in names)
            groups.setdefault(key, []).append(c)
        n_total = len(configs)
        div = set(rng.choice(n_total, size=min(plant.n_diverged, n_total), replace=False).tolist()) \
            if plant.n_diverged else set()
        knots = _family_knots(plant, list(groups.values()))
        start = 0
        for members in groups.values():
            local = {i - start for i in div if start <= i < start + len(members)}
            start += len(members)
            runs_tab, epochs_tab, truth, beta_df = _pack(plant, members, rng, local, versions,
                                                         knots.get(_family_key(members[0])))
            cfg = members[0]
            truth.update({k: getattr(cfg, k) for k in ("experiment", "arch", "norm", "augment", "optimizer",
                                                       "batch_size", "epochs", "schedule", "lr0", "l2")})
            yield truth["pack_id"], runs_tab, epochs_tab, truth, beta_df


def _truth_frames(truths: list[dict], betas: list[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {"procedures": pd.DataFrame(truths),
            "beta": pd.concat(betas, ignore_index=True) if betas else pd.DataFrame()}


def write_synthetic(root: str, experiment: str | Sequence[str] = "main_grid", plant: Plant = Plant(),
                    **grid_kw) -> dict[str, pd.DataFrame]:
    """Write a results root (runs/<pack>.parquet, epochs/<pack>/e00000-<E>.parquet); return the truth.

    One experiment -> `root` is its results root. Several -> one root per experiment,
    `root/<experiment>`, as the sweeps write them (run_id leaves out the experiment, so the same
    run can belong to two experiments: main_grid and lr_l2 share their lr0 = 1e-3, l2 = 0 runs).
    """
    truths, betas = [], []
    several = not isinstance(experiment, str) and len(experiment) > 1
    for pid, runs_tab, epochs_tab, truth, beta_df in generate(experiment, plant, **grid_kw):
        base = os.path.join(root, truth["experiment"]) if several else root
        folder = os.path.join(base, "epochs", pid)
        os.makedirs(folder, exist_ok=True)
        os.makedirs(os.path.join(base, "runs"), exist_ok=True)
        last = int(pc.max(epochs_tab["epoch"]).as_py())
        pq.write_table(epochs_tab, os.path.join(folder, f"e00000-{last:05d}.parquet"))
        pq.write_table(runs_tab, os.path.join(base, "runs", f"{pid}.parquet"))
        truth["root"] = base
        truths.append(truth)
        betas.append(beta_df)
    return _truth_frames(truths, betas)


def synthetic_frames(experiment: str | Sequence[str] = "main_grid", plant: Plant = Plant(),
                     **grid_kw) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """(runs, epochs, truth) in memory, as analysis.load.load would return them (no files): the
    contract's columns plus the `run` and `procedure` keys. One experiment at a time (run_ids of
    different experiments can coincide)."""
    rt, et, truths, betas = [], [], [], []
    for _, runs_tab, epochs_tab, truth, beta_df in generate(experiment, plant, **grid_kw):
        rt.append(runs_tab)
        et.append(epochs_tab)
        truths.append(truth)
        betas.append(beta_df)
    from analysis.load import _run_index, add_procedure, drop_diverged
    runs = add_procedure(to_pandas(pa.concat_tables(rt)))
    runs["run"] = np.arange(len(runs), dtype=np.int64)
    epochs = to_pandas(pa.concat_tables(et))
    epochs["epoch"] = epochs["epoch"].to_numpy(np.int32)
    epochs["run"] = _run_index(epochs["run_id"], runs["run_id"])
    return runs, drop_diverged(runs, epochs), _truth_frames(truths, betas)

