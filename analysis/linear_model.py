"""The minimal linear model of Appendix G (SPEC Section 6): two scalar factors, loss (a b - y)^2.

    python -m analysis.linear_model [-o fig9.html]      # Figure 9 end states; optional figure

    from analysis.linear_model import simulate, identity_residuals, figure9_runs
    tr = simulate("adam", lr=0.01, steps=5000, targets="one")     # full-batch Adam, Keras rule
    tr["D"][-1]                                                   # imbalance a^2 - b^2, ~ -29

Start (a, b) = (1, 6), so D = a^2 - b^2 = -35. The gradient of (a b - y)^2 is g = 2 (a b - y)
times (b, a). Optimizers (simultaneous updates, lr eta per step):
    sgd:  a <- (1 - eta*decay) a - eta g b,  b <- (1 - eta*decay) b - eta g a    (decay: Prop. 4)
    adam: Keras rule, m = b1 m + (1-b1) h; v = b2 v + (1-b2) h^2; t = k+1;
          w <- w - eta sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps), eps = 1e-7
Targets: "one" (y = 1, full batch), "cyclic" (0, 1, 2, 0, 1, 2, ...), "random" (uniform in {0, 1, 2}
each step, seeded), or an explicit array. Plain float arithmetic in a loop (a scalar recurrence
does not vectorise); 200,000 Adam steps take about half a second.

Every step records a_k, b_k, the factor g_k and the update directions (qa, qb), so the exact
per-step identities of Propositions 4, 5 and 8 can be checked: `identity_residuals`.
"""

from __future__ import annotations

import argparse
import math
from typing import Sequence

import numpy as np
from initmem.registry import parse_with_plugins

A0, B0 = 1.0, 6.0
LRS = (0.01, 0.04)


def targets_for(kind, steps: int, seed: int = 0) -> np.ndarray:
    """The target y_k of each step."""
    if isinstance(kind, str):
        if kind == "one":
            return np.ones(steps)
        if kind == "cyclic":
            return np.resize(np.array([0.0, 1.0, 2.0]), steps)
        if kind == "random":
            return np.random.default_rng(seed).integers(0, 3, size=steps).astype(np.float64)
        raise ValueError(f"targets={kind!r} is not allowed: 'one', 'cyclic', 'random' or an array")
    y = np.asarray(kind, dtype=np.float64)
    if len(y) < steps:
        raise ValueError(f"targets has {len(y)} values, fewer than steps={steps}")
    return y[:steps]


def simulate(optimizer: str, lr: float, steps: int, targets="one", a0: float = A0, b0: float = B0,
             decay: float = 0.0, seed: int = 0, beta1: float = 0.9, beta2: float = 0.999,
             eps: float = 1e-7) -> dict[str, np.ndarray | float | str]:
    """Run `steps` updates; arrays a, b, D have steps + 1 entries (index k = after k updates),
    g, qa, qb, y have `steps` (the factor and update directions used at step k)."""
    if optimizer not in ("sgd", "gd", "adam"):
        raise ValueError(f"optimizer={optimizer!r} is not allowed: 'sgd' (= 'gd') or 'adam'")
    ys = targets_for(targets, steps, seed).tolist()
    a, b = float(a0), float(b0)
    A, B, G, QA, QB = [a], [b], [], [], []
    c = 1.0 - lr * decay
    if optimizer == "adam":
        ma = mb = va = vb = 0.0
        p1 = p2 = 1.0
        for y in ys:
            g = 2.0 * (a * b - y)
            ha, hb = g * b, g * a
            ma = beta1 * ma + (1.0 - beta1) * ha
            mb = beta1 * mb + (1.0 - beta1) * hb
            va = beta2 * va + (1.0 - beta2) * ha * ha
            vb = beta2 * vb + (1.0 - beta2) * hb * hb
            p1 *= beta1
            p2 *= beta2
            corr = math.sqrt(1.0 - p2) / (1.0 - p1)
            qa = corr * ma / (math.sqrt(va) + eps)
            qb = corr * mb / (math.sqrt(vb) + eps)
            a, b = c * a - lr * qa, c * b - lr * qb
            A.append(a); B.append(b); G.append(g); QA.append(qa); QB.append(qb)  # noqa: E702
    else:
        for y in ys:
            g = 2.0 * (a * b - y)
            qa, qb = g * b, g * a
            a, b = c * a - lr * qa, c * b - lr * qb
            A.append(a); B.append(b); G.append(g); QA.append(qa); QB.append(qb)  # noqa: E702
    A, B = np.array(A), np.array(B)
    return {"optimizer": optimizer, "lr": lr, "decay": decay, "a": A, "b": B, "D": A * A - B * B,
            "g": np.array(G), "qa": np.array(QA), "qb": np.array(QB), "y": np.array(ys)}


def identity_residuals(tr: dict) -> dict[str, np.ndarray]:
    """Per-step |lhs - rhs| of the Appendix G identities, and the scale to judge them against.

    prop4 (coupled decay, c = 1 - eta*decay, Euclidean steps):
        D_{k+1} = c^2 D_k + eta^2 (b_k^2 g_k^2 - a_k^2 g_k^2)        [scalar V G^T G V^T - U^T G G^T U]
    prop5: the same with decay = 0 (second-order leakage only).
    prop8 (any preconditioned direction q):
        D_{k+1} - D_k = -eta (2 qa_k a_k - 2 qb_k b_k) + eta^2 (qa_k^2 - qb_k^2)   (from (c a - eta q)^2 with c = 1)
    `scale` is a_k^2 + b_k^2 + a_{k+1}^2 + b_{k+1}^2: a residual of a few ulp of it is machine precision.
    """
    a, b, D, g, qa, qb = tr["a"], tr["b"], tr["D"], tr["g"], tr["qa"], tr["qb"]
    lr, decay = tr["lr"], tr["decay"]
    a0, b0, a1, b1 = a[:-1], b[:-1], a[1:], b[1:]
    D0, D1 = D[:-1], D[1:]
    c = 1.0 - lr * decay
    out = {"scale": a0 ** 2 + b0 ** 2 + a1 ** 2 + b1 ** 2}
    if tr["optimizer"] in ("sgd", "gd"):
        rhs4 = c * c * D0 + lr ** 2 * (b0 ** 2 * g ** 2 - a0 ** 2 * g ** 2)
        out["prop4"] = np.abs(D1 - rhs4)
        if decay == 0.0:
            out["prop5"] = np.abs((D1 - D0) - lr ** 2 * (b0 ** 2 * g ** 2 - a0 ** 2 * g ** 2))
    if decay == 0.0:
        rhs8 = -lr * (2 * qa * a0 - 2 * qb * b0) + lr ** 2 * (qa ** 2 - qb ** 2)
        out["prop8"] = np.abs((D1 - D0) - rhs8)
    return out


# Figure 9 panels: (optimizer, targets, steps) as in SPEC Section 6.
FIGURE9 = {
    "a: gradient descent, y = 1": ("sgd", "one", 20),
    "b: SGD, cyclic targets 0,1,2": ("sgd", "cyclic", 50_000),
    "c: full-batch Adam, y = 1": ("adam", "one", 5_000),
    "d: minibatch Adam, random targets": ("adam", "random", 200_000),
}


def figure9_runs(lrs: Sequence[float] = LRS, scale: float = 1.0, seed: int = 0) -> dict[str, dict[float, dict]]:
    """The four Figure 9 experiments at each lr; `scale` shortens every run (tests, previews)."""
    return {name: {lr: simulate(opt, lr, max(1, int(steps * scale)), tg, seed=seed) for lr in lrs}
            for name, (opt, tg, steps) in FIGURE9.items()}


def end_states(runs: dict[str, dict[float, dict]]) -> "list[dict]":
    """Final imbalance D of each panel and lr (rows for a table)."""
    return [{"panel": name, "lr": lr, "steps": len(tr["g"]), "D_start": float(tr["D"][0]),
             "D_end": float(tr["D"][-1]), "a_end": float(tr["a"][-1]), "b_end": float(tr["b"][-1])}
            for name, by_lr in runs.items() for lr, tr in by_lr.items()]


def main(argv: Sequence[str] | None = None) -> None:
    import pandas as pd
    ap = argparse.ArgumentParser(prog="python -m analysis.linear_model", description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", help="write Figure 9 as a standalone HTML file")
    args = parse_with_plugins(ap, argv)
    runs = figure9_runs()
    print(pd.DataFrame(end_states(runs)).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.output:
        from analysis.figures import fig_linear_model
        fig_linear_model(runs).write_html(args.output, include_plotlyjs=True)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
