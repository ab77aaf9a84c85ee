"""The packed optimizer: the pack's parameters, gradients and optimizer state in flat buffers, one
update of every run per step through the optimizer's rule (SPEC Section 3, "Optimizers").

    python -m pytest tests/test_optim.py tests/test_step.py     # Keras ground truth, packs, op counts
    python bench/bench_ops.py                                   # ops per step and per update

    from initmem.optim import PackedOptimizer, schedule_factor
    opt = PackedOptimizer(model.named_parameters(), kinds, "adamw", l2=l2)   # l2: (M,) or None
    for k in range(K):
        loss = ce_per_run + opt.kernel_penalty()       # the Keras loss per run (the L2 term's value)
        ce_per_run.sum().backward()                    # the L2 term's gradient is the optimizer's
        opt.step(lr0 * schedule_factor(k, K, alpha, "cosine"), weight_decay, active)

Every parameter carries a leading run dimension M: slice ``p[m]`` belongs to run m of the pack.
The per-run hyperparameters (the scheduled lr, the decoupled weight decay, Adam's bias-corrected
step) are rows of one (3, M) buffer.  Runs never interact: each update of slice m reads only slice
m (element-wise ops, per-slice Frobenius norms, batched matmuls), so a NaN in one run cannot reach
another, and a run marked inactive keeps its parameters and optimizer state exactly as they were.

What is shared by every optimizer lives here: the flat layout, the gathering of the gradients, the
L2 term (a loss term, Keras kernel_regularizer: g <- g + 2*l2*W on conv and dense kernels, before
the rule), the per-run hyperparameters, the write-back under the active mask, checkpoints. The
arithmetic of each optimizer is its rule, one function in initmem.optim_rules (or a plugin's),
named by its OptimizerSpec (initmem.optimizers), which also declares its state slots.

Our dense kernels are (out, in) where Keras's are (in, out); after the Newton-Schulz
"transpose if rows > cols" both orientations give the identical (min, max) matrix, so the
Muon step is the same computation as Keras's.  The iteration counter (adam's t) is shared by
the pack and advances on every step, also for runs marked inactive.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from initmem.metrics import lr_schedule
from initmem.optim_rules import Part, StepBuffers
from initmem.optimizers import (ADAM_BETA_1, ADAM_BETA_2, EPSILON, KERNEL_KINDS, MUON_ABC,  # noqa: F401
                                MUON_MOMENTUM, MUON_NS_STEPS, MUON_RMS_RATE, NS_EPS, OPTIMIZERS)
from initmem.optimizers import PARAM_KINDS as KINDS
from initmem.registry import resolve_ref

# dims of a packed parameter per kind (leading run dimension M): conv (M, out, in, *k) of 1-3 spatial dims
MIN_NDIM, MAX_NDIM = {"conv": 4, "dense": 3, "bias": 2, "norm": 2, "other": 1}, {"conv": 6, "dense": 3, "bias": 2}

NS_DTYPE = torch.float32    # SPEC: Newton-Schulz runs in float32 whatever the parameter dtype


def schedule_factor(k: int, total_steps: int, alpha: float, schedule: str) -> float:
    """lr_k / lr0 for update k (k = 0, 1, ...): Keras CosineDecay(decay_steps=K, alpha) or 1.
    The formula lives in initmem.metrics.lr_schedule (shared with the clocks)."""
    return lr_schedule(k, total_steps, 1.0, alpha, schedule)


def newton_schulz5(u: Tensor, steps: int = MUON_NS_STEPS, dtype: torch.dtype | None = None) -> Tensor:
    """Keras Muon's zeropower_via_newtonschulz5 on a batch (N, rows, cols), per slice: a new tensor in
    u's dtype, computed in ``dtype`` (default NS_DTYPE = float32).  See NewtonSchulz."""
    ns = NewtonSchulz(tuple(u.shape), NS_DTYPE if dtype is None else dtype, u.device, steps)
    return ns(u).to(u.dtype)


class NewtonSchulz:
    """Newton-Schulz on one batch shape (N, rows, cols) with buffers of its own, so a step allocates
    nothing and dispatches 3 + 3 * steps ops: ||X||_F (per slice), + eps, X = U / norm, then per
    iteration A = X X^T (bmm), B = b*A + c*(A A) and X = a*X + B X (one baddbmm each), ping-ponging
    between two buffers whose transposes are views made once (no transpose op per iteration).

    Keras transposes a tall slice (rows > cols) first and back at the end; here the last iteration
    writes through the transposed view of ``out``, so the result lands in u's layout.  ``out``
    (N, rows, cols) contiguous, in ``dtype``, may be u's own storage (the optimizer passes its u
    buffer): U is read only before the first write.  ``work`` (1-D, in ``dtype``, at least
    ``work_size(shape)`` elements) holds the other buffers; instances that never run at the same time
    may share one (the optimizer's groups do).  Each slice is divided by its own norm and the matmuls
    are batched, so slices never mix.  coefficients: (a, b, c) of the quintic (Keras's MUON_ABC).
    """

    def __init__(self, shape: tuple[int, int, int], dtype: torch.dtype, device, steps: int = MUON_NS_STEPS,
                 out: Tensor | None = None, work: Tensor | None = None, coefficients=MUON_ABC):
        n, rows, cols = shape
        self.tall, self.steps, self.dtype, self.abc = rows > cols, steps, dtype, tuple(coefficients)
        r, c = (cols, rows) if self.tall else (rows, cols)        # oriented: r <= c
        dd = dict(dtype=dtype, device=device)
        self.out = torch.empty(n, rows, cols, **dd) if out is None else out
        if self.out.shape != (n, rows, cols) or self.out.dtype != dtype or not self.out.is_contiguous():
            raise ValueError(f"out must be a contiguous {dtype} tensor of shape {(n, rows, cols)}")
        size = self.work_size(shape)
        work = torch.empty(size, **dd) if work is None else work
        if work.ndim != 1 or work.numel() < size or work.dtype != dtype:
            raise ValueError(f"work must be a 1-D {dtype} tensor of at least {size} elements")
        sizes = (n * r * c, n * r * r, n * r * r, n)
        self.x, self.a, self.b, self.norm = (t.view(v) for t, v in zip(
            work[:size].split(sizes), ((n, r, c), (n, r, r), (n, r, r), (n, 1, 1))))
        self.y = self.out.view(n, r, c)                            # the odd iterations' buffer (out's storage)
        self.last = self.out.mT if self.tall else self.out          # where the last iteration writes
        self.x_t, self.y_t = self.x.mT, self.y.mT

    @staticmethod
    def work_size(shape: tuple[int, int, int]) -> int:
        """Elements of the work buffer: X (n, r, c), A and B (n, r, r) and the norms (n), r = min side."""
        n, rows, cols = shape
        r = min(rows, cols)
        return n * (rows * cols + 2 * r * r + 1)

    def __call__(self, u: Tensor) -> Tensor:
        """O = NS5(u) in ``out`` (returned); u is (N, rows, cols), any dtype and layout."""
        a, b, c = self.abc
        v = u.mT if self.tall else u
        if v.dtype == self.dtype:
            torch.linalg.vector_norm(v, dim=(-2, -1), keepdim=True, out=self.norm)
            torch.div(v, self.norm.add_(NS_EPS), out=self.x)
        else:                                                         # cast first, as Keras does
            self.x.copy_(v)
            torch.linalg.vector_norm(self.x, dim=(-2, -1), keepdim=True, out=self.norm)
            self.x.div_(self.norm.add_(NS_EPS))
        src, src_t, dst, dst_t = self.x, self.x_t, self.y, self.y_t
        for i in range(self.steps):
            final = i == self.steps - 1 and src is self.x
            torch.bmm(src, src_t, out=self.a)                                          # A = X X^T
            torch.baddbmm(self.a, self.a, self.a, beta=b, alpha=c, out=self.b)       # b*A + c*A@A
            torch.baddbmm(src, self.b, src, beta=a, out=self.last if final else dst)  # a*X + B@X
            src, src_t, dst, dst_t = dst, dst_t, src, src_t
        if src is self.x:      # an even number of iterations ends in x: one copy into out
            self.last.copy_(self.x)
        return self.out


class BufferViews:
    """The views of PackedOptimizer's flat buffers that an update uses (PackedOptimizer.views), as attributes:
    the rule's Parts (parts: all, muon, rest), the Muon groups, the hyperparameter rows, the gradient
    views the gathering copies into, and the L2 term's views."""


class _Region:
    """Where one parameter lives in the optimizer's flat buffers: elements [start, stop)."""
    __slots__ = ("name", "kind", "shape", "start", "stop")

    def __init__(self, name, kind, shape, start):
        self.name, self.kind, self.shape, self.start = name, kind, tuple(shape), start
        self.stop = start + math.prod(shape)


class PackedOptimizer:
    """An optimizer's rule applied to packed parameters (leading run dimension M).

    ``param_kinds[name]`` is one of conv | dense | bias | norm | other; conv kernels are
    (M, C_out, C_in, kh, kw), dense kernels (M, out, in), the others (M, C).
    The iteration counter is shared by the pack (Keras ``iterations``; adam uses t = it + 1).
    A parameter whose ``.grad`` is None is skipped entirely (no decay), as Keras skips a
    variable without gradient.

    Few launches per step: the parameters are re-pointed at views of ONE flat buffer (their
    values and identity as tensors stay; ``p.data`` now lives in the buffer), every optimizer
    slot is one flat buffer, and the gradients are gathered into one flat buffer by a single
    ``torch._foreach_copy_``.  The update is then the rule's handful of element-wise ops over the
    whole pack (initmem.optim_rules), with the per-run lr / decay expanded to elements through one
    precomputed run index (``index_select``), and the active mask applied once per written buffer by
    ``torch.where`` (select, never multiply: NaN * 0 is NaN).  Muon's kernels sit first in the buffer,
    grouped by shape, so each group's Newton-Schulz is one batched chain over a precomputed
    (G*M, rows, cols) view.
    Element-wise arithmetic is unchanged, so a run in a pack is bit-identical to the run alone.
    """

    def __init__(self, named_params: Iterable[tuple[str, Tensor]], param_kinds: dict[str, str],
                 optimizer: str, momentum: float = 0.9, l2=None):
        """l2: per-run coefficients (M,) of Keras's L2 loss term on the kernels (conv and dense), or None.
        Its gradient 2*l2*W is added to the kernels' gradients in every update (see ``update``), and
        ``kernel_penalty()`` gives its value; the caller differentiates only the rest of the loss."""
        self.spec = OPTIMIZERS[optimizer]   # a ConfigError (a ValueError) names the registered ones
        self.rule = resolve_ref(self.spec.rule)
        if not callable(self.rule):
            raise ValueError(f"optimizer {optimizer!r}: rule {self.spec.rule!r} is {self.rule!r}, not a function")
        self.optimizer = optimizer
        self.momentum = float(momentum)
        self.iterations = 0
        entries, m_runs = [], None
        seen: set[str] = set()
        for name, p in named_params:
            if name in seen:
                raise ValueError(f"parameter {name!r} given twice")
            seen.add(name)
            if name not in param_kinds:
                raise ValueError(f"parameter {name!r} has no entry in param_kinds")
            kind = param_kinds[name]
            if kind not in KINDS:
                raise ValueError(f"param_kinds[{name!r}]={kind!r} is not allowed: one of {list(KINDS)}")
            lo, hi = MIN_NDIM[kind], MAX_NDIM.get(kind, 99)
            if not lo <= p.ndim <= hi:
                want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi < 99 else f"at least {lo}"
                raise ValueError(f"parameter {name!r} of kind {kind!r} has shape {tuple(p.shape)};"
                                 f" expected {want} dims (leading run dimension M)")
            if m_runs is None:
                m_runs = p.shape[0]
            elif p.shape[0] != m_runs:
                raise ValueError(f"parameter {name!r} has {p.shape[0]} runs, others {m_runs}")
            if entries and (p.dtype, p.device) != (entries[0][2].dtype, entries[0][2].device):
                raise ValueError(f"parameter {name!r} is {p.dtype} on {p.device}, the others "
                                 f"{entries[0][2].dtype} on {entries[0][2].device}: one dtype and device per pack")
            entries.append((name, kind, p))
        if not entries:
            raise ValueError("PackedOptimizer needs at least one parameter")
        self.num_runs = int(m_runs)
        self.names = [n for n, _, _ in entries]
        self.params = [p for _, _, p in entries]
        self.kinds = [k for _, k, _ in entries]
        self._build(entries)
        self._build_l2(l2)
        self.v = self.views()

    # --- routing ------------------------------------------------------------------------------
    def _uses_muon(self, kind: str) -> bool:
        return kind in self.spec.muon_kinds

    def _slots(self, kind: str) -> tuple[str, ...]:
        return self.spec.slots_of(kind)

    # --- the flat layout ---------------------------------------------------------------------------
    def _build(self, entries) -> None:
        """Lay the parameters out in one buffer: Muon kernels first (grouped by per-run shape, so a
        group is one contiguous (G*M, rows, cols) block), then the other kernels, then every other
        variable, each part in model order: the kernels are the range [0, n_kern)."""
        p0 = entries[0][2]
        dd = dict(dtype=p0.dtype, device=p0.device)
        muon = [e for e in entries if self._uses_muon(e[1])]
        kernels = [e for e in entries if e[1] in KERNEL_KINDS and not self._uses_muon(e[1])]
        rest = [e for e in entries if e[1] not in KERNEL_KINDS]
        shapes = list(dict.fromkeys(tuple(p.shape[1:]) for _, _, p in muon))
        ordered = [e for s in shapes for e in muon if tuple(e[2].shape[1:]) == s] + kernels + rest
        self.regions: dict[str, _Region] = {}
        at = 0
        for name, kind, p in ordered:
            self.regions[name] = _Region(name, kind, p.shape, at)
            at = self.regions[name].stop
        n, M = at, self.num_runs
        self.n_muon = sum(self.regions[name].stop - self.regions[name].start for name, _, _ in muon)
        self.n_kern = self.n_muon + sum(self.regions[name].stop - self.regions[name].start for name, _, _ in kernels)
        self.flat = torch.empty(n, **dd)
        self.flat_grad = torch.zeros(n, **dd)
        self.scratch = torch.empty(n, **dd)          # the new weights before the mask selects them
        self.lr_full = torch.empty(n, **dd)          # per-run lr expanded to elements
        # run index of every element (int32: index_select takes it; 4 bytes per element)
        run = torch.empty(n, dtype=torch.int32, device=p0.device)
        for r in self.regions.values():
            per_run = (r.stop - r.start) // M
            run[r.start:r.stop] = torch.arange(M, dtype=torch.int32, device=p0.device).repeat_interleave(per_run)
        self.run_index = run
        view = lambda buf, r, base=0: buf[r.start - base:r.stop - base].view(r.shape)  # noqa: E731
        with torch.no_grad():
            for name, kind, p in entries:
                v = view(self.flat, self.regions[name])
                v.copy_(p)
                p.data = v                      # the parameter now lives in the flat buffer
        # optimizer slots (OptimizerSpec.slots): one flat buffer each, zero at the start, over the span
        # from the first to the last variable that has the slot (adam's "v" under muon: the non-Muon ones)
        spans: dict[str, list[int]] = {}
        for r in self.regions.values():
            for slot in self._slots(r.kind):
                lo_hi = spans.setdefault(slot, [r.start, r.stop])
                lo_hi[0], lo_hi[1] = min(lo_hi[0], r.start), max(lo_hi[1], r.stop)
        self.slot_bufs: dict[str, tuple[Tensor, int]] = {slot: (torch.zeros(hi - lo, **dd), lo)
                                                         for slot, (lo, hi) in spans.items()}
        self.state: dict[str, dict[str, Tensor]] = {}
        for name, kind, _ in entries:
            self.state[name] = {s: view(self.slot_bufs[s][0], self.regions[name], self.slot_bufs[s][1])
                                for s in self._slots(kind)}
        # Muon groups of equal-shape kernels: [lo, hi) in the buffers, (G*M, rows, cols).  The orthogonalised
        # updates land in ns_out, which is u itself unless NS runs in another dtype.
        self._muon_spans = []
        if self.n_muon:
            self.u = torch.empty(self.n_muon, **dd)
            self.ns_out = self.u if NS_DTYPE == p0.dtype else torch.empty(self.n_muon, dtype=NS_DTYPE, device=p0.device)
            for s in shapes:
                names = [nm for nm, _, p in muon if tuple(p.shape[1:]) == s]
                lo, hi = self.regions[names[0]].start, self.regions[names[-1]].stop
                self._muon_spans.append((lo, hi, (sum(self.regions[nm].shape[0] for nm in names), s[0], math.prod(s[1:]))))
            self.ns_work = torch.empty(max(NewtonSchulz.work_size(g) for _, _, g in self._muon_spans),
                                       dtype=NS_DTYPE, device=p0.device)   # shared: the groups run one by one
        else:
            self.u = self.ns_out = None
        self.hparams = torch.zeros(3, M, **dd)        # rows: lr, weight decay, adam's alpha (this step)
        self.mask_full = torch.empty(n, dtype=torch.bool, device=p0.device)  # the active mask per element

    def _build_l2(self, l2) -> None:
        """The L2 term: its per-run coefficients, and views of the kernel range [0, n_kern)."""
        k, M = self.n_kern, self.num_runs
        self.has_l2 = l2 is not None
        if not self.has_l2:
            return
        if not k:
            raise ValueError("l2 given, but the pack has no conv or dense kernel to penalise")
        l2 = torch.as_tensor(self._per_run(l2, "l2"), dtype=self.flat.dtype, device=self.flat.device)
        self.l2, self.l2_twice = l2.clone(), l2 * 2                  # 2*l2 is exact: the gradient's factor
        n_kernels = sum(r.stop <= k for r in self.regions.values())
        self._sq_sums = torch.empty(n_kernels, M, dtype=self.flat.dtype, device=self.flat.device)

    # --- views of the buffers -------------------------------------------------------------------------
    def views(self) -> "BufferViews":
        """Every view of the flat buffers that an update reads or writes, made from the buffers alone.
        Eager steps use the set made once at construction (self.v: no view op per step).  A compiled
        step calls this inside its graph, so that the graph's inputs are the buffers themselves, each
        marked static: inputs that alias one another and are mutated are merged by AOT autograd into
        synthetic bases, which lose their static marks, and CUDA graphs then skip the whole step."""
        k, n = self.n_muon, self.flat.shape[0]
        v = BufferViews()
        v.grad_views = self.param_views(self.flat_grad)
        v.hp_rows = self.hparams.unbind(0)             # lr, weight decay, adam's alpha
        # what a rule sees (initmem.optim_rules.Part): every element, the Muon part [0, k), the rest [k, n)
        v.parts = {"all": self._part("all", 0, n), "muon": self._part("muon", 0, k), "rest": self._part("rest", k, n)}
        # Muon groups: (u as (G*M, rows, cols), its Newton-Schulz, sqrt(max(rows, cols)) * rms_rate)
        c = self.spec.constants
        v.muon_groups = []
        for lo, hi, shape in self._muon_spans:
            _, rows, cols = shape
            u_g, out_g = self.u[lo:hi].view(shape), self.ns_out[lo:hi].view(shape)
            ns = NewtonSchulz(shape, NS_DTYPE, self.u.device, c.get("ns_steps", MUON_NS_STEPS), out=out_g,
                              work=self.ns_work, coefficients=c.get("ns_coefficients", MUON_ABC))
            v.muon_groups.append((u_g, ns, math.sqrt(max(rows, cols)) * c.get("rms_rate", MUON_RMS_RATE)))
        if self.has_l2:                                # the kernels [0, n_kern)
            kn, M = self.n_kern, self.num_runs
            v.w_kern, v.g_kern, v.tmp_kern, v.run_kern = self.flat[:kn], self.flat_grad[:kn], self.scratch[:kn], self.run_index[:kn]
            kern = [r for r in self.regions.values() if r.stop <= kn]      # in buffer order
            v.sq_views = [self.scratch[r.start:r.stop].view(M, -1) for r in kern]
            v.sq_rows = self._sq_sums.unbind(0)
        return v

    def _part(self, name: str, lo: int, hi: int) -> Part:
        """The views of elements [lo, hi) that a rule uses: the buffers themselves when [lo, hi) is all
        of one; a slot only where its buffer spans [lo, hi)."""
        def cut(buf: Tensor, base: int = 0) -> Tensor:
            return buf if (lo, hi) == (base, base + buf.shape[0]) else buf[lo - base:hi - base]
        slots = {slot: cut(buf, base) for slot, (buf, base) in self.slot_bufs.items()
                 if base <= lo and hi <= base + buf.shape[0]}
        return Part(name, lo, hi, cut(self.flat), cut(self.flat_grad), cut(self.scratch), cut(self.lr_full),
                    cut(self.run_index), cut(self.mask_full), slots)

    def param_views(self, buf: Tensor | None = None) -> list[Tensor]:
        """Each parameter's region of a flat buffer (default: the weights), in the order given."""
        buf = self.flat if buf is None else buf
        return [buf[r.start:r.stop].view(r.shape) for r in (self.regions[nm] for nm in self.names)]

    @property
    def muon_groups(self) -> list:
        return self.v.muon_groups

    @torch.no_grad()
    def kernel_penalty(self, v: BufferViews | None = None) -> Tensor:
        """Keras's L2 loss term per run at the current weights, shape (M,): the sum over kernels of
        l2[m] * sum(W[m]**2), summed per layer as Keras sums its layer losses.  1 + n_kernels + 2 ops;
        it uses the scratch buffer, so call it before (not during) an update.  v: views() (default self.v)."""
        if not self.has_l2:
            raise ValueError("kernel_penalty: this optimizer was built without l2")
        v = self.v if v is None else v
        torch.square(v.w_kern, out=v.tmp_kern)
        for sq, row in zip(v.sq_views, v.sq_rows):
            torch.sum(sq, dim=1, out=row)
        return (self._sq_sums * self.l2).sum(0)

    def persistent_tensors(self) -> list[Tensor]:
        """Every buffer the update writes or reads across steps (for torch._dynamo.mark_static_address)."""
        out = [self.flat, self.flat_grad, self.scratch, self.lr_full, self.run_index, self.hparams, self.mask_full]
        out += [b for b, _ in self.slot_bufs.values()]
        if self.n_muon:
            out += [self.u] + ([self.ns_out] if self.ns_out is not self.u else [])
            out += [self.ns_work]
        if self.has_l2:
            out += [self.l2, self.l2_twice, self._sq_sums]
        return out

    # --- per-step hyperparameters -------------------------------------------------------------------
    @staticmethod
    def _bias_correction(t: int, dtype: torch.dtype, beta_1: float = ADAM_BETA_1,
                         beta_2: float = ADAM_BETA_2) -> tuple[float, float]:
        """(sqrt(1 - b2^t), 1 - b1^t) as Keras computes them: power(cast(beta), cast(t)) in the
        variable's dtype.  Done in NumPy on the host (no device round trip); the values are exact
        in that dtype.  Float matters: torch's integer-power path rounds differently, and
        1 - b2^t amplifies one ulp of b2^t to ~1e-5 relative."""
        f = np.float64 if dtype == torch.float64 else np.float32
        b1_power = f(beta_1) ** f(t)
        b2_power = f(beta_2) ** f(t)
        return float(np.sqrt(f(1) - b2_power)), float(f(1) - b1_power)

    def _per_run(self, x, what: str) -> np.ndarray | Tensor:
        if isinstance(x, Tensor) and x.device.type != "cpu":
            t = x.reshape(-1).to(self.flat.dtype)            # stays on the device: no host sync
        else:
            t = np.asarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x, dtype=np.float64)
            t = t.reshape(-1).astype(np.float64 if self.flat.dtype == torch.float64 else np.float32)
        if t.shape[0] == 1:
            t = t.expand(self.num_runs) if isinstance(t, Tensor) else np.repeat(t, self.num_runs)
        if t.shape[0] != self.num_runs:
            raise ValueError(f"{what} has {t.shape[0]} entries for a pack of {self.num_runs} runs")
        return t

    def hyper(self, lr, weight_decay) -> Tensor:
        """The (3, M) per-run hyperparameters of the NEXT update, in the parameter dtype on the host
        (or on lr's device if lr is a device tensor): lr, weight decay, and adam's
        alpha = lr * sqrt(1 - b2^t) / (1 - b1^t) rounded as Keras rounds it (lr, then * c2, then / c1),
        b1 and b2 the optimizer's beta_1 and beta_2 (Adam's when it has none)."""
        lr_v, wd_v = self._per_run(lr, "lr"), self._per_run(weight_decay, "weight_decay")
        c = self.spec.constants
        c2, c1 = self._bias_correction(self.iterations + 1, self.flat.dtype, c.get("beta_1", ADAM_BETA_1),
                                       c.get("beta_2", ADAM_BETA_2))
        if isinstance(lr_v, Tensor) or isinstance(wd_v, Tensor):
            lr_t = torch.as_tensor(lr_v, dtype=self.flat.dtype, device=self.flat.device)
            wd_t = torch.as_tensor(wd_v, dtype=self.flat.dtype, device=self.flat.device)
            return torch.stack([lr_t, wd_t, lr_t * c2 / c1])
        f = lr_v.dtype.type
        return torch.from_numpy(np.stack([lr_v, wd_v, lr_v * f(c2) / f(c1)]))

    # --- the update -----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, lr: Tensor, weight_decay: Tensor, active: Tensor | None = None) -> None:
        """One update of every run: lr (M,) is lr0 * schedule_factor(k); weight_decay (M,).

        ``active`` (M,) bool: runs marked False keep parameters and state bit-for-bit.
        ``weight_decay`` is read only by the rules with decoupled decay (RunConfig forces 0 elsewhere).
        """
        grads = [p.grad for p in self.params]
        if active is not None:
            active = torch.as_tensor(active, dtype=torch.bool, device=self.flat.device).reshape(-1)
            if active.shape[0] != self.num_runs:
                raise ValueError(f"active has {active.shape[0]} entries for a pack of {self.num_runs} runs")
        self.update(grads, self.hyper(lr, weight_decay), active)
        self.iterations += 1

    @torch.no_grad()
    def load_hyper(self, hparams: Tensor) -> None:
        """Copy the (3, M) hyperparameters of ``hyper`` into the optimizer's device buffer, outside the
        step (from pinned memory on CUDA: no stream sync); an update with hparams=None then uses them."""
        if self.hparams.device.type == "cuda" and hparams.device.type == "cpu":
            hparams = hparams.pin_memory()
        self.hparams.copy_(hparams, non_blocking=True)

    def update(self, grads: Sequence[Tensor | None], hparams: Tensor | None, active: Tensor | None = None,
               v: BufferViews | None = None) -> None:
        """The update from explicit gradients (model order; None = skip that variable; a list is emptied
        once they are gathered, so they can be freed early) and the (3, M) hyperparameters of ``hyper``
        (any device; None: those already put in place by ``load_hyper``).  No host sync: capturable in
        one graph.  It does not advance ``iterations`` (a host counter a graph must not read): the
        caller does, as step() does.  v: the buffers' views() (default self.v; a compiled step passes
        those it made inside its graph).

        Shared by every optimizer: gather the gradients, add the L2 term's gradient, call the rule
        (initmem.optim_rules) on the buffers, write its new weights and slots back where the run is
        active."""
        v = self.v if v is None else v
        present = [g is not None for g in grads]
        if all(present):
            torch._foreach_copy_(v.grad_views, list(grads))
        else:
            torch._foreach_copy_([gv for gv, ok in zip(v.grad_views, present) if ok],
                                 [g for g in grads if g is not None])
        if isinstance(grads, list):
            grads.clear()   # the caller's gradients can be freed before the update's temporaries exist
        if self.has_l2:     # Keras's L2 loss term, differentiated here: g += (2*l2) * W on the kernels,
            # bit for bit what autograd adds (x2 is exact), without ~130 autograd ops per step
            torch.index_select(self.l2_twice, 0, v.run_kern, out=v.tmp_kern)
            v.g_kern.add_(v.tmp_kern.mul_(v.w_kern))
        if hparams is not None:
            self.hparams.copy_(hparams)
        s = StepBuffers(v.parts, v.hp_rows, self.spec.constants, self.momentum, v.muon_groups, self.u, self.ns_out)
        every = v.parts["all"]
        # (target, new value, part): what the mask writes back at the end; the weights, then the rule's slots
        out = [(every.w, every.new_w, every)] + list(self.rule(s))
        if not all(present):   # a variable without gradient keeps weights and state (not in the train loop)
            for name, ok in zip(self.names, present):
                r = self.regions[name]
                for dst, val, part in out:
                    if not ok and part.lo <= r.start and r.stop <= part.hi:
                        val[r.start - part.lo:r.stop - part.lo].copy_(dst[r.start - part.lo:r.stop - part.lo])
        if active is None:
            for dst, val, _ in out:
                dst.copy_(val)
        else:
            torch.index_select(active, 0, self.run_index, out=self.mask_full)
            for dst, val, part in out:
                torch.where(part.mask, val, dst, out=dst)         # select, never multiply: NaN-safe

    # --- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "iterations": int(self.iterations),
            # a snapshot on the host: a clone on the device would double m and v there (GBs) for a moment
            "state": {name: {slot: t.detach().to("cpu", copy=True) for slot, t in slots.items()}
                      for name, slots in self.state.items()},
        }

    def load_state_dict(self, d: dict) -> None:
        if d.get("optimizer") != self.optimizer:
            raise ValueError(f"state is for optimizer {d.get('optimizer')!r}, not {self.optimizer!r}")
        state = d["state"]
        if set(state) != set(self.state):
            raise ValueError(f"state names differ: missing {sorted(set(self.state) - set(state))},"
                             f" unexpected {sorted(set(state) - set(self.state))}")
        for name, slots in self.state.items():
            if set(state[name]) != set(slots):
                raise ValueError(f"state slots of {name!r} differ: {sorted(state[name])} vs {sorted(slots)}")
            for slot, t in slots.items():
                src = state[name][slot]
                if tuple(src.shape) != tuple(t.shape):
                    raise ValueError(f"state {name}/{slot} has shape {tuple(src.shape)}, expected {tuple(t.shape)}")
                with torch.no_grad():
                    t.copy_(src)
        self.momentum = float(d.get("momentum", self.momentum))
        self.iterations = int(d["iterations"])
