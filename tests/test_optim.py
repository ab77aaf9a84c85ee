"""Tests for initmem.optim: Keras 3.13 update rules over packed tensors (SPEC Section 3).

1. real Keras ground truth (shared/reference/keras_vectors.npz, float32, JAX backend);
2. an independent float64 reference written here straight from SPEC, scalar loops;
3. a pack of M runs == each run stepped alone;
4. isolation: NaN in one run, inactive runs;
5. state_dict round trip.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from initmem import optim
from initmem.optim import NewtonSchulz, PackedOptimizer, newton_schulz5, schedule_factor

ALL_OPTS = ("sgd", "sgd_momentum", "adam", "adamw", "muon", "muon_conv")
KERAS_OPTS = ("sgd", "sgd_momentum", "adam", "adamw", "muon")
KERAS_VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "keras_vectors.npz"


# ---------------------------------------------------------------------------------------------
# 1. Keras ground truth
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kv():
    if not KERAS_VECTORS.exists():
        pytest.skip(f"Keras ground truth not present at {KERAS_VECTORS} (shared/reference is not checked out)")
    with np.load(KERAS_VECTORS) as d:
        return {k: d[k] for k in d.files}


# name -> (kind, Keras layout -> our per-run layout)
KERAS_LAYOUT = {
    "kernel2d": ("dense", lambda a: a.T),                       # (in, out) -> (out, in)
    "conv4d": ("conv", lambda a: a.transpose(3, 2, 0, 1)),      # (kh, kw, in, out) -> (out, in, kh, kw)
    "bias": ("bias", lambda a: a),
}


def _run_keras_case(kv, opt, dtype):
    """Replay grad/* for K updates; return {name: (ours (K+1, ...), keras (K+1, ...))} in our layout."""
    K, lr0, alpha = int(kv["meta/K"]), float(kv["meta/lr0"]), float(kv["meta/alpha"])
    params = {n: torch.tensor(np.ascontiguousarray(f(kv[f"w0/{n}"]))[None], dtype=dtype)
              for n, (_, f) in KERAS_LAYOUT.items()}
    o = PackedOptimizer(list(params.items()), {n: k for n, (k, _) in KERAS_LAYOUT.items()}, opt)
    wd = torch.tensor([1e-4 if opt in ("adamw", "muon") else 0.0], dtype=torch.float64)
    traj = {n: [p[0].double().numpy().copy()] for n, p in params.items()}
    for k in range(K):
        for n, (_, f) in KERAS_LAYOUT.items():
            params[n].grad = torch.tensor(np.ascontiguousarray(f(kv[f"grad/{n}"][k]))[None], dtype=dtype)
        o.step(torch.tensor([lr0 * schedule_factor(k, K, alpha, "cosine")], dtype=torch.float64), wd)
        for n, p in params.items():
            traj[n].append(p[0].double().numpy().copy())
    out = {}
    for n, (_, f) in KERAS_LAYOUT.items():
        ref = np.stack([f(a) for a in kv[f"{opt}/{n}"]]).astype(np.float64)
        out[n] = (np.stack(traj[n]), ref)
    return out


@pytest.mark.parametrize("opt", KERAS_OPTS)
def test_keras_ground_truth_float32(kv, opt):
    # float32, Keras's arithmetic order: every element of every step within 1e-5 relative
    # (observed max ~5e-7); the atol only guards elements that cancel to ~0.
    for n, (ours, ref) in _run_keras_case(kv, opt, torch.float32).items():
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max(), err_msg=f"{opt}/{n}")


@pytest.mark.parametrize("opt", KERAS_OPTS)
def test_keras_ground_truth_float64(kv, opt):
    # float64 against float32 truth: the truth's own round-off (notably 1 - b2^t in float32) limits
    # agreement to ~1e-6 of the tensor's scale (observed max 1.7e-6), so compare norm-wise per step.
    for n, (ours, ref) in _run_keras_case(kv, opt, torch.float64).items():
        for k in range(ref.shape[0]):
            err = np.abs(ours[k] - ref[k]).max() / np.abs(ref[k]).max()
            assert err < 1e-5, (opt, n, k, err)


def test_keras_schedule(kv):
    K, lr0, alpha = int(kv["meta/K"]), float(kv["meta/lr0"]), float(kv["meta/alpha"])
    ref = kv["schedule/lr"]
    assert ref.shape == (K + 2,)
    ours = np.array([lr0 * schedule_factor(k, K, alpha, "cosine") for k in range(K + 2)])
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_keras_l2(kv):
    w = torch.tensor(kv["w0/conv4d"].transpose(3, 2, 0, 1)[None].copy(), dtype=torch.float64)
    bias = torch.ones(1, 3, dtype=torch.float64)                 # not a kernel: no penalty
    o = PackedOptimizer([("k", w), ("b", bias)], {"k": "conv", "b": "bias"}, "sgd", l2=[1e-2])
    val = o.kernel_penalty()
    assert val.shape == (1,)
    np.testing.assert_allclose(val.numpy(), [float(kv["l2/value_1e-2"])], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# schedule and L2, without the ground truth file
# ---------------------------------------------------------------------------------------------
def test_schedule_factor_values():
    assert schedule_factor(0, 10, 0.01, "cosine") == 1.0
    assert schedule_factor(10, 10, 0.01, "cosine") == pytest.approx(0.01, abs=1e-15)
    assert schedule_factor(25, 10, 0.01, "cosine") == schedule_factor(10, 10, 0.01, "cosine")
    assert schedule_factor(5, 10, 0.0, "cosine") == pytest.approx(0.5, abs=1e-15)
    assert schedule_factor(7, 10, 0.3, "constant") == 1.0
    assert isinstance(schedule_factor(3, 10, 0.01, "cosine"), float)
    with pytest.raises(ValueError, match="schedule"):
        schedule_factor(0, 10, 0.01, "linear")


@pytest.mark.parametrize("dtype", (torch.float64, torch.float32))
@pytest.mark.parametrize("opt", ALL_OPTS)
def test_l2_term_value_and_gradient_against_autograd(opt, dtype):
    # the optimizer's L2 term against an independent computation: the value from scalar sums, and
    # the update with the gradient autograd gives for (loss + l2 * sum(W**2)), bit for bit
    g = torch.Generator().manual_seed(0)
    shapes = {"conv": (3, 4, 2, 3, 3), "dense": (3, 5, 4), "bias": (3, 5), "norm": (3, 4)}
    init = {n: torch.randn(*s, generator=g, dtype=torch.float64).to(dtype) for n, s in shapes.items()}
    ce_grad = {n: torch.randn(*s, generator=g, dtype=torch.float64).to(dtype) for n, s in shapes.items()}
    l2 = torch.tensor([0.0, 1e-3, 5e-2], dtype=dtype)
    lr, wd = torch.tensor([1e-2, 2e-2, 3e-2], dtype=torch.float64), torch.full((3,), 1e-3, dtype=torch.float64)

    ours = {n: v.clone() for n, v in init.items()}
    o = PackedOptimizer(list(ours.items()), {n: n for n in shapes}, opt, l2=l2)
    val = o.kernel_penalty()
    for m in range(3):
        want = sum(float(l2[m]) * float((init[n][m].double() ** 2).sum()) for n in ("conv", "dense"))
        assert float(val[m]) == pytest.approx(want, rel=1e-14 if dtype == torch.float64 else 1e-6, abs=0.0)
    for n, p in ours.items():
        p.grad = ce_grad[n].clone()
    o.step(lr, wd)

    ref = {n: v.clone().requires_grad_(n in ("conv", "dense")) for n, v in init.items()}
    pen = sum((l2.reshape((3,) + (1,) * (ref[n].ndim - 1)) * ref[n].square()).sum() for n in ("conv", "dense"))
    pen.backward()
    ro = PackedOptimizer([(n, v.detach()) for n, v in ref.items()], {n: n for n in shapes}, opt)
    for n, p in zip(ro.names, ro.params):
        p.grad = ce_grad[n] + (ref[n].grad if ref[n].grad is not None else 0)
    ro.step(lr, wd)
    for n, p in zip(o.names, o.params):
        assert torch.equal(p, dict(zip(ro.names, ro.params))[n]), (opt, n)
    with pytest.raises(ValueError, match="without l2"):
        ro.kernel_penalty()
    with pytest.raises(ValueError, match="l2 has 2 entries"):
        PackedOptimizer([(n, v.clone()) for n, v in init.items()], {n: n for n in shapes}, opt, l2=[0.1, 0.2])


# ---------------------------------------------------------------------------------------------
# 2. independent float64 reference, written from SPEC Section 3, one run and one scalar at a time
# ---------------------------------------------------------------------------------------------
def _ref_matmul(a, b, cast):
    n, k, p = len(a), len(b), len(b[0])
    out = [[0.0] * p for _ in range(n)]
    for i in range(n):
        for j in range(p):
            s = cast(0.0)
            for t in range(k):
                s = cast(s + cast(a[i][t] * b[t][j]))
            out[i][j] = s
    return out


def _ref_newton_schulz(u, cast):
    """SPEC: transpose if rows > cols, X = u/(||u||_F + 1e-7), 5 x {A = X X^T; X = aX + (bA + cA^2)X}."""
    a, b, c = cast(3.4445), cast(-4.7750), cast(2.0315)
    rows, cols = len(u), len(u[0])
    x = [[cast(v) for v in row] for row in u]
    if rows > cols:
        x = [list(col) for col in zip(*x)]
    sq = cast(0.0)
    for row in x:
        for v in row:
            sq = cast(sq + cast(v * v))
    nrm = cast(cast(math.sqrt(sq)) + cast(1e-7))
    x = [[cast(v / nrm) for v in row] for row in x]
    for _ in range(5):
        xt = [list(col) for col in zip(*x)]
        A = _ref_matmul(x, xt, cast)
        A2 = _ref_matmul(A, A, cast)
        B = [[cast(cast(b * A[i][j]) + cast(c * A2[i][j])) for j in range(len(A))] for i in range(len(A))]
        BX = _ref_matmul(B, x, cast)
        x = [[cast(cast(a * x[i][j]) + BX[i][j]) for j in range(len(x[0]))] for i in range(len(x))]
    if rows > cols:
        x = [list(col) for col in zip(*x)]
    return x


class RefOptimizer:
    """One run; parameters are numpy float64 arrays in our layout; loops over scalars."""

    def __init__(self, params, kinds, opt, momentum=0.9, ns_cast=float):
        self.p = {n: np.array(v, dtype=np.float64) for n, v in params.items()}
        self.kinds, self.opt, self.mu, self.ns_cast = kinds, opt, momentum, ns_cast
        self.s = {n: {"m": np.zeros_like(v), "v": np.zeros_like(v)} for n, v in self.p.items()}
        self.k = 0

    def muon_var(self, kind):
        return (self.opt == "muon" and kind == "dense") or (self.opt == "muon_conv" and kind in ("dense", "conv"))

    def step(self, grads, lr, wd):
        b1, b2, eps = 0.9, 0.999, 1e-7
        t = self.k + 1
        for n, w in self.p.items():
            g = grads[n].reshape(-1)
            wf, mf, vf = w.reshape(-1), self.s[n]["m"].reshape(-1), self.s[n]["v"].reshape(-1)
            if self.opt == "sgd":
                for i in range(wf.size):
                    wf[i] = wf[i] - lr * g[i]
                continue
            if self.opt == "sgd_momentum":
                for i in range(wf.size):
                    mf[i] = self.mu * mf[i] - lr * g[i]
                    wf[i] = wf[i] + mf[i]
                continue
            if self.opt in ("adamw", "muon", "muon_conv"):        # decoupled decay first, every variable
                for i in range(wf.size):
                    wf[i] = wf[i] - lr * wd * wf[i]
            if self.muon_var(self.kinds[n]):
                u = np.zeros(wf.size)
                for i in range(wf.size):
                    mf[i] = 0.95 * mf[i] + g[i]
                    u[i] = g[i] + 0.95 * mf[i]
                rows = w.shape[0]
                cols = wf.size // rows                          # conv: (c_out, c_in*kh*kw)
                um = [[float(u[r * cols + c]) for c in range(cols)] for r in range(rows)]
                o = _ref_newton_schulz(um, self.ns_cast)
                scale = 0.2 * math.sqrt(max(rows, cols))
                for r in range(rows):
                    for c in range(cols):
                        wf[r * cols + c] = wf[r * cols + c] - lr * scale * float(o[r][c])
            else:
                corr = math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                for i in range(wf.size):
                    mf[i] = b1 * mf[i] + (1 - b1) * g[i]
                    vf[i] = b2 * vf[i] + (1 - b2) * g[i] ** 2
                    wf[i] = wf[i] - lr * corr * mf[i] / (math.sqrt(vf[i]) + eps)
        self.k += 1


SHAPES = {"conv": (4, 2, 3, 3), "dense": (3, 5), "tall": (6, 2), "bias": (4,), "norm": (4,)}
KINDS = {"conv": "conv", "dense": "dense", "tall": "dense", "bias": "bias", "norm": "norm"}
LR0 = (0.05, 0.01, 0.2)
WD = (1e-4, 1e-2, 3e-3)
K_COS, ALPHA = 20, 0.01


def _init(M, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n, s in SHAPES.items():
        if n == "norm":
            out[n] = (1.0 + 0.1 * torch.randn((M,) + s, generator=g, dtype=torch.float64)).to(dtype)
        else:
            out[n] = torch.randn((M,) + s, generator=g, dtype=torch.float64).to(dtype)
    return out


def _grads(steps, M, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        step = {}
        for n, s in SHAPES.items():
            scale = 10.0 ** torch.empty((M,) + (1,) * len(s), dtype=torch.float64).uniform_(-6, 0, generator=g)
            step[n] = (scale * torch.randn((M,) + s, generator=g, dtype=torch.float64)).to(dtype)
        out.append(step)
    return out


def _make(params, opt, momentum=0.9):
    return PackedOptimizer(list(params.items()), dict(KINDS), opt, momentum=momentum)


def _lr(k, lr0=LR0, dtype=torch.float64):
    return torch.tensor([l * schedule_factor(k, K_COS, ALPHA, "cosine") for l in lr0], dtype=dtype)


def _run_pack(opt, M=3, steps=24, lr0=LR0, wd=WD, grads=None, init=None, active=None, momentum=0.9,
              dtype=torch.float64):
    params = _init(M, dtype=dtype) if init is None else {n: v.clone() for n, v in init.items()}
    grads = _grads(steps, M, dtype=dtype) if grads is None else grads
    o = _make(params, opt, momentum)
    for k in range(steps):
        for n, p in params.items():
            p.grad = grads[k][n].clone()
        o.step(_lr(k, lr0), torch.tensor(wd, dtype=torch.float64),
               None if active is None else active(k))
    return params, o


def _ref_pack(opt, steps=24, ns_cast=float, momentum=0.9):
    M = len(LR0)
    init, grads = _init(M), _grads(steps, M)
    out = []
    for m in range(M):
        r = RefOptimizer({n: v[m].numpy() for n, v in init.items()}, KINDS, opt, momentum, ns_cast)
        for k in range(steps):
            r.step({n: grads[k][n][m].numpy() for n in SHAPES}, LR0[m] * schedule_factor(k, K_COS, ALPHA, "cosine"), WD[m])
        out.append(r)
    return out


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("opt", ALL_OPTS)
def test_matches_float64_spec_reference(opt, monkeypatch):
    # 24 updates (past the cosine horizon K=20), 3 runs with different lr0 and weight decay.
    # Newton-Schulz is switched to float64 here so the whole rule is checked at 1e-10;
    # the float32 NS that SPEC prescribes is checked in the next test.
    monkeypatch.setattr(optim, "NS_DTYPE", torch.float64)
    momentum = 0.8 if opt == "sgd_momentum" else 0.9
    params, o = _run_pack(opt, momentum=momentum)
    refs = _ref_pack(opt, momentum=momentum)
    for m, r in enumerate(refs):
        for n in SHAPES:
            err = _rel(params[n][m].numpy(), r.p[n])
            assert err < 1e-10, (opt, m, n, err)
            for slot, st in o.state[n].items():
                ref_slot = {"velocity": "m"}.get(slot, slot)
                err = _rel(st[m].numpy(), r.s[n][ref_slot])
                assert err < 1e-10, (opt, m, n, slot, err)
    assert o.iterations == 24


@pytest.mark.parametrize("opt", ("muon", "muon_conv"))
def test_muon_float32_newton_schulz(opt):
    # Default NS_DTYPE = float32 against the reference with float32 rounding inside NS (numpy float32
    # scalars, sequential sums).  Summation order differs from BLAS, so O agrees only to float32
    # round-off; that error enters w scaled by lr: loosened to 1e-6 for the Muon kernels only,
    # while the adamw-routed variables must still agree to 1e-10.
    assert optim.NS_DTYPE == torch.float32
    params, _ = _run_pack(opt)
    refs = _ref_pack(opt, ns_cast=np.float32)
    muon_vars = {"dense", "tall"} | ({"conv"} if opt == "muon_conv" else set())
    for m, r in enumerate(refs):
        for n in SHAPES:
            err = _rel(params[n][m].numpy(), r.p[n])
            assert err < (1e-6 if n in muon_vars else 1e-10), (opt, m, n, err)


def test_newton_schulz_orthogonalises_and_is_per_slice():
    g = torch.Generator().manual_seed(3)
    u = torch.randn(4, 6, 10, generator=g, dtype=torch.float64) * torch.tensor([1e-6, 1.0, 1e3, 5.0]).reshape(4, 1, 1)
    o = newton_schulz5(u)
    assert o.dtype == torch.float64 and o.shape == u.shape
    sv = torch.linalg.svdvals(o)
    assert float(sv.min()) > 0.5 and float(sv.max()) < 1.3          # approximately semi-orthogonal
    # scale-free, except where the 1e-7 added to ||u||_F is not negligible (slice 0, ||u|| ~ 1e-5)
    assert torch.allclose(newton_schulz5(u[1:] * 7.0), o[1:], rtol=1e-5, atol=1e-6)
    for m in range(4):
        assert torch.equal(newton_schulz5(u[m:m + 1]), o[m:m + 1])
    tall = newton_schulz5(u.mT.contiguous())
    torch.testing.assert_close(tall, o.mT, rtol=1e-5, atol=1e-6)   # float32 NS: memory layout changes BLAS rounding


@pytest.mark.parametrize("steps", (0, 1, 4, 5))
@pytest.mark.parametrize("shape", ((3, 4, 7), (3, 7, 4)))      # wide and tall slices
def test_newton_schulz_buffers_match_the_plain_iteration(shape, steps):
    # the buffered, ping-ponging NewtonSchulz (out aliasing u, as the optimizer runs it) against the
    # iteration written plainly with numpy, float64: odd and even step counts, tall and wide
    a, b, c = optim.MUON_ABC
    u = torch.randn(*shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    want = []
    for s in u.numpy():
        x = s.T if s.shape[0] > s.shape[1] else s
        x = x / (np.linalg.norm(x) + optim.NS_EPS)
        for _ in range(steps):
            A = x @ x.T
            x = a * x + (b * A + c * A @ A) @ x
        want.append(x.T if s.shape[0] > s.shape[1] else x)
    buf = u.clone()
    ns = NewtonSchulz(shape, torch.float64, "cpu", steps, out=buf)
    got = ns(buf)
    assert got is buf
    np.testing.assert_allclose(got.numpy(), np.stack(want), rtol=1e-12, atol=1e-13)
    again = ns(u.clone())                                       # reused buffers: same answer
    assert torch.equal(again, got)
    with pytest.raises(ValueError, match="contiguous"):
        NewtonSchulz(shape, torch.float64, "cpu", out=torch.empty(shape[0], shape[2], shape[1], dtype=torch.float64).mT)


# ---------------------------------------------------------------------------------------------
# 3. pack == alone
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", (torch.float64, torch.float32))
@pytest.mark.parametrize("opt", ALL_OPTS)
def test_pack_equals_alone(opt, dtype):
    # bit-identical on CPU, float64 and float32 (the float32 Newton-Schulz included)
    M, steps = 3, 24
    init, grads = _init(M, dtype=dtype), _grads(steps, M, dtype=dtype)
    packed, po = _run_pack(opt, grads=grads, init=init, dtype=dtype)
    for m in range(M):
        alone, ao = _run_pack(opt, M=1, lr0=(LR0[m],), wd=(WD[m],),
                              grads=[{n: g[n][m:m + 1] for n in g} for g in grads],
                              init={n: v[m:m + 1] for n, v in init.items()}, dtype=dtype)
        for n in SHAPES:
            assert torch.equal(packed[n][m:m + 1], alone[n]), (opt, m, n)
            for slot in po.state[n]:
                assert torch.equal(po.state[n][slot][m:m + 1], ao.state[n][slot]), (opt, m, n, slot)


# ---------------------------------------------------------------------------------------------
# 4. isolation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", (torch.float64, torch.float32))
@pytest.mark.parametrize("opt", ALL_OPTS)
def test_nan_in_one_run_never_reaches_the_others(opt, dtype):
    M, steps = 3, 12
    init, grads = _init(M, dtype=dtype), _grads(steps, M, dtype=dtype)
    bad = [{n: g.clone() for n, g in step.items()} for step in grads]
    for k in range(4, steps):
        for n in SHAPES:
            bad[k][n][0] = float("nan")
        bad[k]["dense"][0, 0, 0] = float("inf")
    clean, co = _run_pack(opt, steps=steps, grads=grads, init=init, dtype=dtype)
    dirty, do = _run_pack(opt, steps=steps, grads=bad, init=init, dtype=dtype)
    assert not torch.isfinite(dirty["conv"][0]).all()           # run 0 really diverged
    for n in SHAPES:
        assert torch.equal(dirty[n][1:], clean[n][1:]), (opt, n)
        for slot in co.state[n]:
            assert torch.equal(do.state[n][slot][1:], co.state[n][slot][1:]), (opt, n, slot)


@pytest.mark.parametrize("opt", ALL_OPTS)
def test_inactive_run_is_untouched(opt):
    M, steps = 3, 12
    init, grads = _init(M), _grads(steps, M)
    # run 1 stops after update 5; its gradient turns NaN afterwards, which must not matter either
    for k in range(6, steps):
        for n in SHAPES:
            grads[k][n][1] = float("nan")
    mask = lambda k: torch.tensor([True, k < 6, True])
    snap, o6 = _run_pack(opt, steps=6, grads=grads, init=init)
    params, o = _run_pack(opt, steps=steps, grads=grads, init=init, active=mask)
    full, fo = _run_pack(opt, steps=steps, grads=[{n: g[n].nan_to_num(0.0) for n in g} for g in grads], init=init)
    for n in SHAPES:
        # inactive run: parameters and state exactly as after update 6
        assert torch.equal(params[n][1], snap[n][1]), (opt, n)
        for slot in o.state[n]:
            assert torch.equal(o.state[n][slot][1], o6.state[n][slot][1]), (opt, n, slot)
        # active runs are unaffected by their pack-mate stopping
        for m in (0, 2):
            assert torch.equal(params[n][m], full[n][m]), (opt, n, m)
            for slot in o.state[n]:
                assert torch.equal(o.state[n][slot][m], fo.state[n][slot][m]), (opt, n, slot, m)


# ---------------------------------------------------------------------------------------------
# 5. checkpointing
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt", ALL_OPTS)
def test_state_dict_round_trip_is_exact(opt):
    M, steps, cut = 3, 20, 9
    init, grads = _init(M), _grads(steps, M)
    straight, so = _run_pack(opt, steps=steps, grads=grads, init=init)

    params, o = _run_pack(opt, steps=cut, grads=grads, init=init)
    buf = io.BytesIO()
    torch.save({"opt": o.state_dict(), "params": {n: p.detach().clone() for n, p in params.items()}}, buf)
    for st in o.state.values():           # the saved dict must be a copy, not a view
        for t in st.values():
            t.add_(1.0)
    buf.seek(0)
    ck = torch.load(buf)
    assert ck["opt"]["iterations"] == cut
    resumed = {n: v.clone() for n, v in ck["params"].items()}
    ro = _make(resumed, opt)
    ro.load_state_dict(ck["opt"])
    for k in range(cut, steps):
        for n, p in resumed.items():
            p.grad = grads[k][n].clone()
        ro.step(_lr(k), torch.tensor(WD, dtype=torch.float64))
    assert ro.iterations == so.iterations == steps
    for n in SHAPES:
        assert torch.equal(resumed[n], straight[n]), (opt, n)
        for slot in so.state[n]:
            assert torch.equal(ro.state[n][slot], so.state[n][slot]), (opt, n, slot)


def test_load_state_dict_rejects_mismatch():
    params = _init(2)
    a = _make(params, "adam").state_dict()
    with pytest.raises(ValueError, match="optimizer"):
        _make(params, "sgd_momentum").load_state_dict(a)
    small = _init(2)
    small.pop("norm")
    with pytest.raises(ValueError, match="state names"):
        PackedOptimizer(list(small.items()), dict(KINDS), "adam").load_state_dict(a)


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------
def test_constructor_and_step_validation():
    params = _init(3)
    with pytest.raises(ValueError, match="optimizer"):
        _make(params, "rmsprop")
    with pytest.raises(ValueError, match="param_kinds"):
        PackedOptimizer(list(params.items()), {"conv": "conv"}, "sgd")
    with pytest.raises(ValueError, match="expected 3 dims"):
        PackedOptimizer([("w", torch.zeros(3, 4))], {"w": "dense"}, "sgd")
    o = _make(params, "adamw")
    for n, p in params.items():
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match="lr has 2 entries"):
        o.step(torch.tensor([0.1, 0.1]), torch.zeros(3))


def test_param_without_grad_is_skipped_and_tensors_stay_in_place():
    params = _init(2)
    o = _make(params, "adamw")
    ids = {n: p.data_ptr() for n, p in params.items()}
    before = params["bias"].clone()
    for n, p in params.items():
        p.grad = None if n == "bias" else torch.ones_like(p)
    o.step(torch.tensor([0.1, 0.2], dtype=torch.float64), torch.tensor([1e-2, 1e-2], dtype=torch.float64))
    assert torch.equal(params["bias"], before)
    assert not torch.equal(params["conv"], _init(2)["conv"])
    assert all(params[n].data_ptr() == ids[n] for n in params)


@pytest.mark.parametrize("opt", ("sgd_momentum", "adam", "muon_conv"))
def test_state_dict_snapshot_is_on_the_cpu_whatever_the_device(opt):
    # issue 17, finding 8: the checkpoint's copy of m and v was cloned on the GPU (~8 GB at M = 151);
    # a fake CUDA device (FakeTensorMode: shapes and devices, no data) shows where the copy lands
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        params = {n: torch.empty((2,) + s, device="cuda") for n, s in SHAPES.items()}
        sd = _make(params, opt).state_dict()
        devices = {t.device.type for slots in sd["state"].values() for t in slots.values()}
    assert devices == {"cpu"}
