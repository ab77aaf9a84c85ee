"""The paper's six findings (SPEC Section 5b) as checked rules: for each, the measured quantities with
seed-bootstrap 95% intervals and a verdict (holds / fails / inconclusive / not run).

    python -m analysis.findings RESULTS [RESULTS ...] [--n-boot 1000]    # one line per finding

    from analysis.findings import evaluate, findings
    findings(runs, epochs)              # DataFrame: finding, scale, statement, measured, verdict, note
    table, parts = evaluate(runs, epochs)   # and the parts behind each verdict (point, lo, hi, verdict)

Where the paper check (analysis.paper_check) compares the paper's numbers and needs the paper's
design, these rules test its qualitative claims on any design (a mini study: small networks, the
5-point sigma set, a few seeds): each compares like with like, on the data's own sigma set and seeds.

  - Like with like. Runs are grouped by their sizes (SIZES: dataset, width, train_subset,
    eval_subset; a group is a `scale`), and every rule is evaluated within one group, one row per
    finding and group. A comparison of two procedures (SGD with Adam, long with short, b=16 with
    b=128) uses only the sigma_w values both have; F3 also only their common seeds when they share
    some at every sigma (the long run then starts from the short run's initialisations).
  - Uncertainty. Each procedure's spread is bootstrapped over seeds within its sigma cells
    (analysis.memory.spread_boot; procedures are disjoint sets of runs, so their replicates are
    independent); a ratio, a difference or a rank correlation of spreads is computed replicate by
    replicate and its 95% percentile interval taken. With one seed per cell the interval is the point.
  - Verdict of a part: "holds" when the whole interval lies on the rule's side of its threshold,
    "fails" when the whole interval lies on the other side, "inconclusive" when it straddles it,
    "not run" when the data lack what the part needs (the reason is given). Parts are instances of a
    finding's sub-claims (F4: falls, erased, lr alone, each per batch size; F5: SGD + L2 and the Adam
    family; F6: grows and momentum). A sub-claim combines the instances that ran, all of which must
    hold (all_of: fails if any fails, else inconclusive if any is; F2 is an existence claim, any_of),
    and is "not run" when none ran (the ones that did not are named in the note). The finding:
    fails if a sub-claim fails, else not run if one is not run, else inconclusive if one is, else holds.

The thresholds are below, each with the words of the paper (or SPEC Section 5b / issue 16) it reads;
they were fixed before any real data existed and are not to be tuned to make a finding hold.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from initmem.optimizers import OPTIMIZERS
from initmem.registry import parse_with_plugins

from analysis.bootstrap import sigma_boot
from analysis.collapse import COLLAPSE_BOOT  # F5's replicates at most (each refits beta(t)), as in the report
from analysis.design import SIZE_FIELDS, _size
from analysis.memory import PP, noise_floor, spread_boot

# ----------------------------------------------------------------------------- thresholds (one place)
LOW_LR = 1e-3       # lr0 (per update) of "low-learning-rate SGD" and of the whole main grid (SPEC Section 2)
SEVERAL = 3.0       # F1 "several times the Adam family's": the smallest integer that is "several" (more than a
                    # couple); the paper's ratios are 22.8/1.6 = 14x (b=16), 26.5/4.7 = 5.6x (b=128), 25.7/5.3
                    # = 4.8x (b=256), so 3 leaves room for a smaller study without reading "twice" as "several"
TRAINED_PP = 99.0   # F2 ">= 99 % train accuracy at tau_best" (SPEC 5b, issue 16): the claim is that the memory is
                    # not a failure to fit; 99 sits just below the paper's 99.5 % interpolation mark, so a small
                    # network that fits all but 1 % of its data counts as trained
LARGE_PP = 5.0      # F2 "its spread stays large": the smallest SGD spread the paper still calls memory that is not
                    # eliminated is 5.1 pp (LayerNorm + augmentation, b=16); it calls < 1 pp erased
FEW_PP = 3.0        # F3 "within a few pp" / "leaves the spread essentially unchanged": a fall of more than 3 pp
                    # counts against it. One-sided: the claim is that long training does not erase the spread, and
                    # the paper's own b=16 numbers rise (22.8 pp after 300 epochs, ~26 after 5,000)
LONG_FACTOR = 10.0  # F3 "after 10x the epochs" (issue 16; the paper: 5,000 / 300 = 16.7x)
ERASED_PP = 1.0     # F4 "< 1 pp once T_L2 >> 1" (the paper: L2 5e-3 -> "below 1 pp", L2 1e-2 -> 0.3 pp)
BIG_T = 10.0        # F4 "T_L2 >> 1": an order of magnitude above 1, on the recorded clock (cosine decay
                    # included). The paper's own < 1 pp cases sit at T_L2 = 2.4 and 4.7 as recorded (4.7, 9.4
                    # with the decay ignored), so every configuration past 10 must be erased if the finding holds
PAPER_L2 = (1e-2, 1e-2)  # F5: (lr0, l2) of Figure 6's SGD + L2 curve (green); without it, the L2 family that
                    # reaches the largest T_L2 (the one with a decay for the clock to align)
CI = 0.95           # every interval: 95% percentile of the seed bootstrap
NOISE_Q = 0.95      # the noise floor of a spread: this quantile of the spreads seed noise alone gives (the runs'
                    # deviations from their cell means, shuffled among the runs). Max - min of seed means is biased
                    # upward (by ~2.3 standard errors of a cell mean over 5 sigmas): a spread at or below its floor
                    # cannot tell "large" (F2, F4's "only partly") or "not erased" (F4's < 1 pp) from noise, so a verdict
                    # that would rest on it is "inconclusive", never "holds" / "fails"

SIZES = tuple(f for f in SIZE_FIELDS if f != "epochs")  # a study's scale: what every comparison holds fixed
EXPERIMENTS_USED = ("main_grid", "long_sgd", "lr_l2")
VERDICTS = ("holds", "fails", "inconclusive", "not run")


@dataclasses.dataclass
class Part:
    """One measured piece of a finding and its verdict; point/lo/hi in the unit of `text`. `claim`:
    the sub-claim it is an instance of (default: the label without its "b=..." prefix): instances of
    one sub-claim at different batch sizes or optimizers are combined over those that ran, and the
    sub-claims of a finding must all be tested."""
    label: str
    text: str
    point: float = np.nan
    lo: float = np.nan
    hi: float = np.nan
    verdict: str = "not run"
    claim: str | None = None

    def __post_init__(self):
        if self.claim is None:
            self.claim = re.sub(r"^b=\d+\s*", "", self.label)


# ----------------------------------------------------------------------------- verdict rules
def at_least(lo: float, hi: float, thr: float) -> str:
    """Rule 'value >= thr' on an interval (NaN bounds, no interval: inconclusive)."""
    if np.isnan(lo) or np.isnan(hi):
        return "inconclusive"
    return "holds" if lo >= thr else "fails" if hi < thr else "inconclusive"


def less_than(lo: float, hi: float, thr: float) -> str:
    """Rule 'value < thr' on an interval."""
    if np.isnan(lo) or np.isnan(hi):
        return "inconclusive"
    return "holds" if hi < thr else "fails" if lo >= thr else "inconclusive"


def greater_than(lo: float, hi: float, thr: float) -> str:
    """Rule 'value > thr' on an interval."""
    if np.isnan(lo) or np.isnan(hi):
        return "inconclusive"
    return "holds" if lo > thr else "fails" if hi <= thr else "inconclusive"


def all_of(verdicts: Sequence[str]) -> str:
    """Parts that must all hold: fails > not run > inconclusive > holds."""
    if not verdicts:
        return "not run"
    for v in ("fails", "not run", "inconclusive"):
        if v in verdicts:
            return v
    return "holds"


def any_of(verdicts: Sequence[str]) -> str:
    """An existence claim: holds if one part holds; else inconclusive > not run > fails."""
    if not verdicts:
        return "not run"
    for v in ("holds", "inconclusive", "not run"):
        if v in verdicts:
            return v
    return "fails"


# ----------------------------------------------------------------------------- measuring
def _ci(reps: np.ndarray) -> tuple[float, float]:
    """The CI percentile interval of bootstrap replicates (NaN ones left out; a ratio over a zero
    spread is inf, and then the quantiles are order statistics, not interpolated between infs)."""
    r = np.asarray(reps, dtype=np.float64)
    r = r[~np.isnan(r)]
    if not len(r):
        return np.nan, np.nan
    a = (1.0 - CI) / 2.0
    method = "linear" if np.isfinite(r).all() else "inverted_cdf"
    return float(np.quantile(r, a, method=method)), float(np.quantile(r, 1 - a, method=method))


def _iv(point: float, lo: float, hi: float, unit: str = " pp", digits: int = 1) -> str:
    if not np.isfinite(point):
        return "-"
    f = f"{{:.{digits}f}}"
    band = f" [{f.format(lo)}, {f.format(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else " (no interval)"
    return f.format(point) + band + unit


def _adaptive() -> list[str]:
    """The Adam family: every registered optimizer of the adaptive family (initmem.optimizers)."""
    return [o for o, spec in OPTIMIZERS.items() if spec.adaptive]


def _name(o: str) -> str:
    from analysis.figures import OPT_NAME
    return OPT_NAME.get(o, o)


class Study:
    """The runs of one scale, with the seed bootstrap the rules share (one generator: reproducible)."""

    def __init__(self, runs: pd.DataFrame, epochs: pd.DataFrame | None, n_boot: int, seed: int):
        self.runs, self.epochs, self.n_boot, self.seed = runs, epochs, n_boot, seed
        self.rng = np.random.default_rng(seed)

    def exp(self, name: str) -> pd.DataFrame | None:
        r = self.runs[self.runs["experiment"] == name]
        return r if len(r) else None

    def spreads(self, frames: Sequence[pd.DataFrame]) -> list[tuple[float, np.ndarray]]:
        """(Mem in pp, its n_boot bootstrap replicates) of each frame (one procedure's runs each)."""
        cat = pd.concat([f.assign(_k=i) for i, f in enumerate(frames)], ignore_index=True)
        t, boot = spread_boot(cat, by=["_k"], n_boot=self.n_boot, seed=int(self.rng.integers(1 << 31)))
        out = [(np.nan, np.full(self.n_boot, np.nan))] * len(frames)
        for j, k in enumerate(t["_k"].to_numpy()):
            out[int(k)] = (float(t["mem"].iloc[j]), boot[:, j])
        return out

    def noise_floor(self, frame: pd.DataFrame) -> float:
        """What seed noise alone gives as a spread at this design (analysis.memory.noise_floor, NOISE_Q)."""
        return noise_floor(frame, q=NOISE_Q, n=max(self.n_boot, 200), seed=self.seed)

    def train_min(self, frame: pd.DataFrame) -> tuple[float, np.ndarray]:
        """The lowest seed-mean train accuracy at tau_best over sigma (pp) and its replicates."""
        v = pd.to_numeric(frame["train_acc_best"], errors="coerce").to_numpy(np.float64) * PP
        if not np.isfinite(v).any():
            return np.nan, np.full(self.n_boot, np.nan)
        _, means, boot = sigma_boot(v, frame["sigma_w"].to_numpy(np.float64), self.n_boot, self.rng)
        return float(means.min()), boot.min(axis=1)


def _pick(runs: pd.DataFrame | None, **select) -> dict[int, pd.DataFrame]:
    """Per batch size, the runs of the matching procedure with the most runs."""
    from analysis.paper_check import _matches   # one selection rule: isclose for floats, == otherwise
    if runs is None:
        return {}
    r = runs[_matches(runs, select)]
    out = {}
    for b, g in r.groupby("batch_size", sort=True):
        out[int(b)] = g[g["procedure"] == g["procedure"].value_counts().index[0]]
    return out


def _common_sigmas(frames: Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
    """Each frame restricted to the sigma_w values every frame has (a spread depends on its sigma set)."""
    keys = [np.round(f["sigma_w"].to_numpy(np.float64), 9) for f in frames]
    common = set(keys[0]).intersection(*map(set, keys[1:]))
    return [f[np.isin(k, list(common))] for f, k in zip(frames, keys)]


def _above_noise(verdict: str, says_large: str, point: float, floor: float) -> tuple[str, str]:
    """`verdict` unless it is the one that says the spread is large (`says_large`) while the spread is
    within its noise floor: then "inconclusive". Also the text naming the floor."""
    text = f"; seed noise alone gives up to {floor:.1f} pp" if np.isfinite(floor) else ""
    if verdict == says_large and np.isfinite(floor) and point <= floor:
        return "inconclusive", text + ", and this is within it"
    return verdict, text


def _not_run(reason: str) -> list[Part]:
    return [Part("", reason)]


# ----------------------------------------------------------------------------- the six rules
def f1(S: Study) -> tuple[list[Part], Callable]:
    mg = S.exp("main_grid")
    if mg is None:
        return _not_run("main_grid is not in the results"), all_of
    sgd = _pick(mg, optimizer="sgd", lr0=LOW_LR, l2=0.0)
    fam = {o: p for o in _adaptive() if (p := _pick(mg, optimizer=o, lr0=LOW_LR))}
    if not sgd:
        return _not_run(f"no main-grid SGD at lr0 {LOW_LR:g} without L2"), all_of
    if not fam:
        return _not_run(f"no Adam-family optimizer ({', '.join(_adaptive())}) at lr0 {LOW_LR:g} in the main grid"), all_of
    parts = []
    for b in sgd:
        opts = [o for o in fam if b in fam[o]]
        if not opts:
            continue
        (s, rs), *others = S.spreads(_common_sigmas([sgd[b]] + [fam[o][b] for o in opts]))
        pts = np.array([p for p, _ in others])
        big = int(np.nanargmax(pts))
        with np.errstate(divide="ignore", invalid="ignore"):
            reps = rs / np.vstack([r for _, r in others]).max(axis=0)
            ratio = s / np.nanmax(pts)
        lo, hi = _ci(reps)
        parts.append(Part(f"b={b}", f"b={b}: SGD {_iv(s, *_ci(rs))} vs the Adam family's largest, {_name(opts[big])} "
                          f"{_iv(pts[big], *_ci(others[big][1]))}: ratio {_iv(ratio, lo, hi, 'x')} "
                          f"(>= {SEVERAL:g}x)", ratio, lo, hi, at_least(lo, hi, SEVERAL)))
    return parts or _not_run("no batch size has both SGD and an Adam-family optimizer"), all_of


def f2(S: Study) -> tuple[list[Part], Callable]:
    sgd = _pick(S.exp("main_grid"), optimizer="sgd", lr0=LOW_LR, l2=0.0)
    if not sgd:
        return _not_run(f"no main-grid SGD at lr0 {LOW_LR:g} without L2"), any_of
    parts = []
    for b, r in sgd.items():
        tm, trep = S.train_min(r)
        if not np.isfinite(tm):
            parts.append(Part(f"b={b}", f"b={b}: no train accuracy at tau_best"))
            continue
        (s, rs), = S.spreads([r])
        (tlo, thi), (slo, shi) = _ci(trep), _ci(rs)
        large, floor = _above_noise(at_least(slo, shi, LARGE_PP), "holds", s, S.noise_floor(r))
        v = all_of([at_least(tlo, thi, TRAINED_PP), large])
        parts.append(Part(f"b={b}", f"b={b}: lowest train accuracy over sigma {_iv(tm, tlo, thi, ' %', 2)} "
                          f"(>= {TRAINED_PP:g}) with spread {_iv(s, slo, shi)} (>= {LARGE_PP:g}{floor})",
                          s, slo, shi, v))
    return parts, any_of


def f3(S: Study) -> tuple[list[Part], Callable]:
    long, mg = S.exp("long_sgd"), S.exp("main_grid")
    if long is None:
        return _not_run("long_sgd is not in the results"), all_of
    if mg is None:
        return _not_run("main_grid (the short run) is not in the results"), all_of
    parts = []
    for b, lr in _pick(long, optimizer="sgd").items():
        lr0 = float(lr["lr0"].iloc[0])
        short = _pick(mg, optimizer="sgd", lr0=lr0, l2=0.0).get(b)
        if short is None:
            parts.append(Part(f"b={b}", f"b={b}: no main-grid SGD at lr0 {lr0:g} (the short run)"))
            continue
        el, es = int(lr["epochs"].iloc[0]), int(short["epochs"].iloc[0])
        if el < LONG_FACTOR * es:
            parts.append(Part(f"b={b}", f"b={b}: long_sgd has {el / es:.1f}x the epochs of the main grid's SGD "
                              f"({el} vs {es}); the rule needs >= {LONG_FACTOR:g}x"))
            continue
        a, c = _common_sigmas([lr, short])
        both = set(a["seed"]) & set(c["seed"])
        paired = bool(both) and all(set(g["seed"]) & both for _, g in a.groupby("sigma_w")) and \
            all(set(g["seed"]) & both for _, g in c.groupby("sigma_w"))
        if paired:
            a, c = a[a["seed"].isin(both)], c[c["seed"].isin(both)]
        (sl, rl), (ss, rss) = S.spreads([a, c])
        lo, hi = _ci(rl - rss)
        seeds = f"on their {len(both)} common seed{'s' * (len(both) > 1)}" if paired else "on all their seeds"
        one = " (one seed: no interval)" if a.groupby("sigma_w")["seed"].nunique().max() == 1 else ""
        parts.append(Part(f"b={b}", f"b={b}: {el} epochs ({lr['schedule'].iloc[0]} lr {lr0:g}) {_iv(sl, *_ci(rl))} vs "
                          f"{es} epochs {_iv(ss, *_ci(rss))}, {seeds}{one}: change {_iv(sl - ss, lo, hi)} "
                          f"(>= -{FEW_PP:g})", sl - ss, lo, hi, at_least(lo, hi, -FEW_PP)))
    return parts or _not_run("no SGD procedure in long_sgd"), all_of


def _final_t(runs: pd.DataFrame, clock: str) -> float:
    """A procedure's clock at its last epoch: the median over its runs that did not diverge (their
    clocks stop at divergence), as the report's clock table."""
    ok = runs[runs["status"] != "diverged"] if "status" in runs else runs
    return float((ok if len(ok) else runs)[clock].median())


def _spearman(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Rank correlation of x with each row of Y (average ranks for ties)."""
    rx = pd.Series(x).rank().to_numpy()
    ry = pd.DataFrame(np.atleast_2d(Y)).rank(axis=1).to_numpy()
    rx, ry = rx - rx.mean(), ry - ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ry @ rx) / np.sqrt((ry * ry).sum(axis=1) * (rx @ rx))


def f4(S: Study) -> tuple[list[Part], Callable]:
    lr = S.exp("lr_l2")
    if lr is None:
        return _not_run("lr_l2 is not in the results"), all_of
    lr = lr[lr["optimizer"] == "sgd"]
    parts = []
    for b, at in lr.groupby("batch_size", sort=True):
        cfg = {}
        for key, g in at.groupby(["lr0", "l2"], sort=True):
            cfg[key] = g[g["procedure"] == g["procedure"].value_counts().index[0]]
        keys = list(cfg)
        frames = _common_sigmas([cfg[k] for k in keys])
        sp = S.spreads(frames)
        T = np.array([_final_t(cfg[k], "t_l2") for k in keys])
        pts = np.array([p for p, _ in sp])
        reps = np.vstack([r for _, r in sp])  # (configurations, replicates)
        # (b) the spread falls as T_L2 grows: rank correlation over all (lr0, l2) at this b
        if len(keys) >= 3 and len(set(T)) >= 2:
            rho = float(_spearman(T, pts[None, :])[0])
            lo, hi = _ci(_spearman(T, reps.T)) if reps.shape[1] else (np.nan, np.nan)
            parts.append(Part(f"b={b} falls", f"b={b}: rank correlation of T_L2 with the spread over {len(keys)} "
                              f"configurations {_iv(rho, lo, hi, '', 2)} (< 0)", rho, lo, hi, less_than(lo, hi, 0.0)))
        else:
            parts.append(Part(f"b={b} falls", f"b={b}: fewer than 3 (lr0, l2) configurations with 2 T_L2 values"))
        # (c) < 1 pp once T_L2 >> 1: the largest spread among the configurations past BIG_T
        big = np.flatnonzero(T >= BIG_T)
        if len(big):
            w = big[int(np.nanargmax(pts[big]))]
            lo, hi = _ci(reps[big].max(axis=0))
            v, floor = _above_noise(less_than(lo, hi, ERASED_PP), "fails", pts[w], S.noise_floor(frames[w]))
            span = f"{T[big].min():.3g}" + (f"-{T[big].max():.3g}" if len(big) > 1 else "")
            parts.append(Part(f"b={b} erased", f"b={b}: largest spread with T_L2 >= {BIG_T:g} ({len(big)} "
                              f"configuration{'s' * (len(big) > 1)}, T_L2 {span}) {_iv(pts[w], lo, hi)} "
                              f"(< {ERASED_PP:g}{floor})", float(pts[w]), lo, hi, v))
        else:
            parts.append(Part(f"b={b} erased", f"b={b}: no configuration reaches T_L2 >= {BIG_T:g} (largest "
                              f"{np.nanmax(T):.3g})"))
        # (d) lr alone shrinks it only partly: no L2, smallest vs largest lr0
        plain = sorted((k[0], i) for i, k in enumerate(keys) if k[1] == 0.0)
        if len(plain) >= 2:
            (l0, i0), (l1, i1) = plain[0], plain[-1]
            d = pts[i1] - pts[i0]
            dlo, dhi = _ci(reps[i1] - reps[i0])
            klo, khi = _ci(reps[i1])
            kept, floor = _above_noise(at_least(klo, khi, ERASED_PP), "holds", pts[i1], S.noise_floor(frames[i1]))
            v = all_of([less_than(dlo, dhi, 0.0), kept])
            parts.append(Part(f"b={b} lr alone", f"b={b}: lr alone (no L2), lr0 {l0:g} -> {l1:g}: "
                              f"{_iv(pts[i0], *_ci(reps[i0]))} -> {_iv(pts[i1], klo, khi)} (>= {ERASED_PP:g}{floor}), "
                              f"change {_iv(d, dlo, dhi)} (< 0)", d, dlo, dhi, v))
        else:
            parts.append(Part(f"b={b} lr alone", f"b={b}: fewer than 2 learning rates without L2"))
    return parts or _not_run("no SGD in lr_l2"), all_of


def f5(S: Study) -> tuple[list[Part], Callable]:
    from analysis.collapse import CLOCK_VERDICT, EPOCH_VERDICT, NO_VERDICT, collapse_table
    from analysis.load import procedure_columns
    from analysis.sensitivity import CLOCK_SHORT, family_columns
    if S.epochs is None or not len(S.epochs):
        return _not_run("needs the epochs table (beta(t) per epoch)"), all_of
    wanted, names, missing = [], {}, []
    lr = S.exp("lr_l2")
    if lr is not None:
        l2 = lr[(lr["optimizer"] == "sgd") & (lr["l2"] > 0)]
        fams = {k: g for k, g in l2.groupby(["lr0", "l2"]) if g["batch_size"].nunique() >= 2}
        if fams:
            from analysis.paper_check import _matches
            key = next((k for k in fams if _matches(pd.DataFrame([k], columns=["lr0", "l2"]),
                                                    dict(zip(("lr0", "l2"), PAPER_L2))).all()), None)
            note = ""
            if key is None:  # the family whose slowest batch size still reaches the largest T_L2
                key = max(fams, key=lambda k: min(_final_t(g, "t_l2") for _, g in fams[k].groupby("batch_size")))
                note = (f" (no lr0 {PAPER_L2[0]:g} + L2 {PAPER_L2[1]:g} in the data: the L2 family reaching the "
                        f"largest T_L2)")
            wanted.append(fams[key])
            names[("lr_l2", "sgd", key[0], key[1])] = f"SGD + L2 (lr0 {key[0]:g}, L2 {key[1]:g}){note}"
    if not wanted:
        missing.append(Part("SGD + L2", "no SGD + L2 family (lr_l2, l2 > 0) with two or more batch sizes"))
    mg = S.exp("main_grid")
    n_sgd = len(wanted)
    if mg is not None:
        for o in _adaptive():
            g = mg[(mg["optimizer"] == o) & np.isclose(mg["lr0"], LOW_LR)]
            if g["batch_size"].nunique() >= 2:
                wanted.append(g)
                names[("main_grid", o, LOW_LR, float(g["l2"].iloc[0]))] = _name(o)
    if len(wanted) == n_sgd:
        missing.append(Part("Adam family", f"no Adam-family optimizer at lr0 {LOW_LR:g} in the main grid at two or "
                                           f"more batch sizes"))
    if not wanted:
        return missing, all_of
    sub = pd.concat(wanted)
    fam = family_columns(sub, procedure_columns(sub))
    ct = collapse_table(sub, S.epochs, fam, n_boot=min(S.n_boot, COLLAPSE_BOOT), seed=S.seed)
    verdict = {CLOCK_VERDICT: "holds", EPOCH_VERDICT: "fails", NO_VERDICT: "inconclusive"}
    parts = []
    for _, r in ct.iterrows():
        name = next((n for (e, o, a, l), n in names.items() if e == r["experiment"] and o == r["optimizer"]
                     and np.isclose(a, r["lr0"]) and np.isclose(l, r["l2"])), r["optimizer"])
        v = verdict.get(r["verdict"], "not run" if r["verdict"] == "not measurable" else "inconclusive")
        why = " (no two batch sizes whose clock ranges overlap)" if r["verdict"] == "not measurable" else ""
        score = _iv(r["score"], r["lo"], r["hi"], "", 2)
        parts.append(Part(name, f"{name} on {CLOCK_SHORT[r['clock']]}: score {score} over {r['n_curves']} batch sizes, "
                          f"{r['verdict']}{why} (< 1: on its clock)", r["score"], r["lo"], r["hi"], v,
                          claim="SGD + L2" if r["experiment"] == "lr_l2" else "Adam family"))
    return parts + missing, all_of


def f6(S: Study) -> tuple[list[Part], Callable]:
    mg = S.exp("main_grid")
    sgd = _pick(mg, optimizer="sgd", lr0=LOW_LR, l2=0.0)
    if len(sgd) < 2:
        return _not_run(f"needs main-grid SGD at lr0 {LOW_LR:g} at two or more batch sizes"), all_of
    bs = sorted(sgd)
    small = bs[0]
    large = 128 if 128 in bs and small < 128 else bs[-1]  # the paper's pair is b=16 and b=128
    parts = []
    (s0, r0), (s1, r1) = S.spreads(_common_sigmas([sgd[small], sgd[large]]))
    lo, hi = _ci(r1 - r0)
    parts.append(Part("grows", f"SGD b={small} {_iv(s0, *_ci(r0))} -> b={large} {_iv(s1, *_ci(r1))}: change "
                      f"{_iv(s1 - s0, lo, hi)} (> 0)", s1 - s0, lo, hi, greater_than(lo, hi, 0.0)))
    mom = _pick(mg, optimizer="sgd_momentum", lr0=LOW_LR, l2=0.0).get(small)
    if mom is None:
        parts.append(Part("momentum", f"no main-grid SGD + momentum at lr0 {LOW_LR:g}, b={small}"))
    else:
        (sm, rm), (ss, rs) = S.spreads(_common_sigmas([mom, sgd[small]]))
        lo, hi = _ci(rm - rs)
        parts.append(Part("momentum", f"b={small}: SGD + momentum {_iv(sm, *_ci(rm))} vs SGD {_iv(ss, *_ci(rs))}: "
                          f"change {_iv(sm - ss, lo, hi)} (< 0)", sm - ss, lo, hi, less_than(lo, hi, 0.0)))
    return parts, all_of


RULES: tuple[tuple[str, str, Callable], ...] = (
    ("F1", f"SGD at lr0 {LOW_LR:g} keeps a large spread, several times (>= {SEVERAL:g}x) the Adam family's at the same "
           f"batch size", f1),
    ("F2", f"The memory is not a failure to train: SGD reaches >= {TRAINED_PP:g}% train accuracy at tau_best at every "
           f"sigma while its spread stays large (>= {LARGE_PP:g} pp), at some batch size", f2),
    ("F3", f"Long training at a constant small lr does not erase it: after >= {LONG_FACTOR:g}x the epochs the spread "
           f"has not fallen by more than {FEW_PP:g} pp", f3),
    ("F4", f"Regularisation erases it on its clock: the spread falls as T_L2 grows and is < {ERASED_PP:g} pp once "
           f"T_L2 >= {BIG_T:g}; a larger lr alone shrinks it only partly", f4),
    ("F5", "|beta(t)| collapses across batch sizes on the own clock (T_L2 for SGD + L2, T_adapt for the Adam family) "
           "better than on epochs", f5),
    ("F6", "SGD's spread grows with batch size, and momentum shrinks it at small batch size", f6),
)


# ----------------------------------------------------------------------------- the table
def _scales(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The runs the rules use (main_grid, long_sgd, lr_l2), one group per scale (SIZES)."""
    r = runs[runs["experiment"].isin(EXPERIMENTS_USED)] if len(runs) else runs
    cols = [c for c in SIZES if c in r]
    if not len(r) or not cols:
        return [("", r)]
    from initmem.config import RunConfig
    base = {c: getattr(RunConfig(), c) for c in cols}
    out = []
    for key, g in r.groupby(cols, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        diff = [f"{c} {_size(c, v)}" for c, v in zip(cols, key) if v != base[c]]
        out.append(("the paper's sizes" if not diff else ", ".join(diff), g))
    return sorted(out, key=lambda x: x[0] != "the paper's sizes")  # the paper's sizes first


def evaluate(runs: pd.DataFrame, epochs: pd.DataFrame | None = None, n_boot: int = 1000,
             seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, parts). table: one row per finding and scale: finding, scale, statement, measured (the
    parts' texts), verdict, note. parts: finding, scale, part, text, point, lo, hi, verdict. `runs`
    finished runs from analysis.load.load; `epochs` for F5 (None: F5 not run)."""
    rows, prow = [], []
    scales = _scales(runs)
    for si, (scale, r) in enumerate(scales):
        S = Study(r, epochs, n_boot, seed + si)
        for fid, statement, rule in RULES:
            parts, combine = rule(S)
            run = [p for p in parts if p.label]
            claims: dict[str, list[str]] = {}
            for p in run:
                claims.setdefault(p.claim, []).append(p.verdict)
            # each sub-claim over its instances that ran ("not run" if none did); all sub-claims required
            verdict = all_of([combine([v for v in vs if v != "not run"]) for vs in claims.values()]) if run \
                else "not run"
            note = "; ".join(p.text for p in parts if not p.label)
            missing = [p.text for p in run if p.verdict == "not run"]
            rows.append({"finding": fid, "scale": scale, "statement": statement,
                         "measured": "; ".join(p.text for p in run if p.verdict != "not run") or "-",
                         "verdict": verdict, "note": "; ".join(x for x in [note, *missing] if x)})
            prow += [{"finding": fid, "scale": scale, "part": p.label, "text": p.text, "point": p.point, "lo": p.lo,
                      "hi": p.hi, "verdict": p.verdict} for p in run]
    return pd.DataFrame(rows), pd.DataFrame(prow, columns=["finding", "scale", "part", "text", "point", "lo", "hi",
                                                           "verdict"])


def findings(runs: pd.DataFrame, epochs: pd.DataFrame | None = None, n_boot: int = 1000,
             seed: int = 0) -> pd.DataFrame:
    """One row per finding (and scale): finding, scale, statement, measured, verdict, note."""
    return evaluate(runs, epochs, n_boot, seed)[0]


def summary(table: pd.DataFrame) -> str:
    """'4 hold, 1 fails, 1 not run' (counts of the verdicts)."""
    n = table["verdict"].value_counts()
    words = {"holds": ("hold", "holds"), "fails": ("fail", "fails"), "inconclusive": ("inconclusive",) * 2,
             "not run": ("not run",) * 2}
    return ", ".join(f"{n[v]} {words[v][int(n[v] == 1)]}" for v in VERDICTS if n.get(v, 0))


def lines(table: pd.DataFrame) -> list[str]:
    """One line per finding: 'F1 holds: statement. Measured: ... Note: ...'."""
    several = table["scale"].nunique() > 1
    out = []
    for _, r in table.iterrows():
        where = f" [{r['scale']}]" if several else ""
        note = f" Note: {r['note']}." if r["note"] else ""
        out.append(f"{r['finding']}{where} {r['verdict']}: {r['statement']}. Measured: {r['measured']}.{note}")
    return out


def report_blocks(runs: pd.DataFrame, epochs: pd.DataFrame, n_boot: int, seed: int) -> tuple[str, list[str]]:
    """The report's reading sentence on the findings and their table (analysis.report's first section)."""
    t = findings(runs, epochs, n_boot=n_boot, seed=seed)
    text = (f"The paper's six findings (SPEC Section 5b) as rules on these results, on their own sigma_w set and "
            f"seeds, each with seed-bootstrap 95% intervals: {summary(t)}. 'holds' / 'fails': the interval lies on "
            f"one side of the rule's threshold; 'inconclusive': it straddles it; 'not run': the data lack what the "
            f"rule needs (analysis/README.md, Findings).")
    show = t if t["scale"].nunique() > 1 else t.drop(columns="scale")
    body = show.to_html(index=False, escape=True, border=0, classes="tbl wrap")
    cap = ("<p class='cap'>Findings: the paper's qualitative claims as checked rules; measured = the quantities "
           "each rule reads, value [95% seed-bootstrap interval] (its threshold).</p>")
    return text, [f"<div class='tblwrap'>{cap}{body}</div>"]


def main(argv: Sequence[str] | None = None) -> None:
    from analysis.design import banner, presets_of, study_table
    from analysis.load import finished, load_or_exit, progress
    from analysis.sensitivity import CLOCKS
    ap = argparse.ArgumentParser(prog="python -m analysis.findings", description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", help="results root(s): local folders or URIs")
    ap.add_argument("--n-boot", type=int, default=1000, help="seed-bootstrap replicates (F5's collapse: at most "
                                                             f"{COLLAPSE_BOOT})")
    args = parse_with_plugins(ap, argv)
    runs, epochs = load_or_exit(args.roots, epoch_columns=["epoch", "val_acc", *CLOCKS])
    runs, epochs = finished(runs, epochs)
    head = banner(study_table(runs, presets_of(runs, progress(args.roots, runs))))
    if head:
        print(head)
    t = findings(runs, epochs, n_boot=args.n_boot)
    print("\n".join(lines(t)))
    print(f"Findings: {summary(t)}.")


if __name__ == "__main__":
    main()

