"""train_pack: train M runs in lockstep on one device, Keras semantics, exact resume, Parquet out.

    python -m initmem train --help          # the CLI around it (initmem/cli.py)

One pack = runs sharing RunConfig.pack_key. Each run keeps its own generators (init; data order
and augmentation), its own lr0 / l2 / weight decay, its own history and its own fate: a run whose
loss turns non-finite is frozen at its last finite state and marked diverged; a run whose val loss
has not improved for `patience` epochs stops (the schedule of the others is unchanged). Frozen
runs keep being carried through the forward pass (shapes stay fixed) but never update again.

Order of writes at an epoch boundary (what makes results exactly-once, docs/results.md):
  1. epochs rows since the last checkpoint -> one Parquet file (and, once a run has early-stopped or
     diverged, the pack's runs rows again, so that `tune_jobs status` shows it while the pack runs),
  2. checkpoint -> checkpoint_dir/state.pt (temp file + rename),
  3. on_checkpoint(epoch, checkpoint_dir)  (Ray Tune reports it).
Resume from the checkpoint of epoch k first deletes this pack's epochs files after k.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

import initmem
from initmem import metrics
from initmem.config import RunConfig, check_pack, checkpoint_interval, pack_id
from initmem.data import Splits, augment, augment_draws, epoch_order, run_generators
from initmem.memory import eval_chunk
from initmem.models import build_model
from initmem.optim import PackedOptimizer, schedule_factor
from initmem.provenance import code_version
from initmem.results import EPOCHS_SCHEMA, ResultsWriter

CHECKPOINT_FILE = "state.pt"
HISTORY_KEYS = tuple(n for n in EPOCHS_SCHEMA.names if n != "run_id")  # one list per epochs column


def setup_precision(cfg: RunConfig) -> tuple[torch.dtype, Callable]:
    """Parameter dtype and an autocast context factory for cfg.effective_precision.

    fp64: float64 everywhere (tests).  fp32: float32, TF32 off (strict).  tf32: float32 storage,
    TF32 matmul/conv on CUDA (the default there: precision=auto).  bf16: fp32 master weights,
    forward under bfloat16 autocast.  The TF32 switches are process-wide (one pack per process).
    """
    dev = torch.device(cfg.device)
    precision = cfg.effective_precision
    if dev.type == "cuda":
        allow = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = allow
        torch.backends.cudnn.allow_tf32 = allow
    dtype = torch.float64 if precision == "fp64" else torch.float32
    if precision == "bf16":
        return dtype, (lambda: torch.autocast(dev.type, dtype=torch.bfloat16))
    return dtype, nullcontext


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, n_runs: int, autocast, chunk: int,
             pad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy per run in inference mode; the same images for every run, `chunk`
    images at a time (initmem.memory.eval_chunk: what the device holds). pad: the last chunk is padded
    with zero images to `chunk` (one input shape for a compiled forward; the padding's outputs are
    dropped: in inference mode an image's outputs do not depend on the others)."""
    if chunk < 1:
        raise ValueError(f"chunk={chunk!r} is not allowed: an integer >= 1 (images per forward)")
    model.eval()
    loss = torch.zeros(n_runs, dtype=torch.float64, device=x.device)
    correct = torch.zeros(n_runs, dtype=torch.float64, device=x.device)
    for i in range(0, len(y), chunk):
        xb, yb = x[i:i + chunk], y[i:i + chunk]
        if pad and len(yb) < chunk:
            xb = torch.cat([xb, xb.new_zeros((chunk - len(yb), *xb.shape[1:]))])
        with autocast():
            logits = model(xb.unsqueeze(0).expand(n_runs, *xb.shape))
        logits = logits[:, :len(yb)].to(x.dtype)  # bf16 autocast logits -> fp32 for the loss
        ce = F.cross_entropy(logits.flatten(0, 1), yb.repeat(n_runs), reduction="none").view(n_runs, -1)
        loss += ce.sum(1).double()
        correct += (logits.argmax(-1) == yb).sum(1).double()
    return loss / len(y), correct / len(y)


class PackTrainer:
    """The state of one pack in training; train_pack() drives it. Kept as a class so that the
    checkpoint is simply its state_dict."""

    def __init__(self, runs: Sequence[RunConfig], data: Splits, compile_backend: str | None = None):
        """compile_backend: torch.compile backend of the step when cfg.compile (None: inductor, with
        CUDA graphs on CUDA; tests pass "aot_eager", which needs no code generation)."""
        check_pack(runs)
        self.runs, self.cfg, self.m = list(runs), runs[0], len(runs)
        self.pack_id = pack_id(runs)
        self.device = torch.device(self.cfg.device)
        self.dtype, self.autocast = setup_precision(self.cfg)
        self.data = data.to(self.device, self.dtype)
        self.n_train = len(self.data.y_train)
        if self.n_train != self.cfg.n_train:
            raise ValueError(f"data has {self.n_train} train images but the config expects {self.cfg.n_train} "
                             f"(train_subset={self.cfg.train_subset}); load the data with the same subset")
        self.steps_per_epoch, self.total_steps = self.cfg.steps_per_epoch, self.cfg.total_steps
        self.eval_chunk = eval_chunk(self.cfg, self.m)   # images per evaluation forward (the memory model)

        self.lr0 = np.array([r.lr0 for r in runs], dtype=np.float64)  # the schedule is computed in double, on the host
        vec = (lambda key: torch.tensor([getattr(r, key) for r in runs], dtype=torch.float64, device=self.device))
        self.l2, self.wd = vec("l2").to(self.dtype), np.array([r.weight_decay for r in runs])
        self.has_l2 = bool((self.l2 > 0).any())
        self.model = build_model(self.cfg, self.m, dtype=self.dtype, device=self.device)
        self.model.init_(runs, run_generators([r.seed for r in runs], stream=0))
        self.opt = PackedOptimizer(list(self.model.named_parameters()), self.model.param_kinds,
                                   self.cfg.optimizer, self.cfg.momentum, l2=self.l2 if self.has_l2 else None)
        params = dict(self.model.named_parameters())  # stable tensors: load_state_dict copies in place
        self.params = list(params.values())
        self.kernels = [params[n] for n in self.model.kernel_names]
        self.n_params = self.model.n_params_per_run()
        # per-epoch device state the step updates in place (no host sync inside a step)
        self.active_t = torch.ones(self.m, dtype=torch.bool, device=self.device)
        self.loss_sum = torch.zeros(self.m, dtype=torch.float64, device=self.device)
        self.correct = torch.zeros(self.m, dtype=torch.float64, device=self.device)
        self.forward, self.step_fn = self.model, self.train_step
        if self.cfg.compile:
            cuda = self.device.type == "cuda"
            kw = {"backend": compile_backend} if compile_backend else {"mode": "reduce-overhead" if cuda else "default"}
            # static shapes: the last partial batch gets a graph of its own (made once, in epoch 1), where
            # automatic dynamic shapes would make the batch size symbolic for every later step
            kw["dynamic"] = False
            import torch._dynamo as dynamo
            # tensors the step mutates in place live at fixed addresses: CUDA graphs replay on them
            # instead of copying them in (and skipping capture for mutated inputs)
            for x in self.opt.persistent_tensors() + [self.active_t, self.loss_sum, self.correct]:
                dynamo.mark_static_address(x)
            self.forward = torch.compile(self.model, **kw)   # evaluation
            self.step_fn = torch.compile(self.graph_step, fullgraph=True, **kw)  # the whole step, one graph
        self.data_gens = run_generators([r.seed for r in runs], stream=1)

        self.epoch, self.step, self.wall = 0, 0, 0.0
        self.history: list[dict[str, list]] = [{k: [] for k in HISTORY_KEYS} for _ in runs]
        self.active = np.ones(self.m, dtype=bool)
        self.diverged_epoch: list[int | None] = [None] * self.m
        self.stopped_epoch: list[int | None] = [None] * self.m
        self.es_best = np.full(self.m, np.inf)  # Keras EarlyStopping: best val loss and wait count
        self.es_wait = np.zeros(self.m, dtype=np.int64)
        self.written_epoch = -1  # last epoch already in the Parquet

    # --- one epoch ---------------------------------------------------------------------------
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """evaluate() of this pack's forward on one split, in the pack's chunks (padded when compiled)."""
        return evaluate(self.forward, x, y, self.m, self.autocast, self.eval_chunk, pad=self.cfg.compile)

    @torch.no_grad()
    def _penalty(self) -> torch.Tensor:
        """Keras L2 penalty per run at the current weights (for reported losses)."""
        if not self.has_l2:
            return torch.zeros(self.m, dtype=torch.float64, device=self.device)
        return self.opt.kernel_penalty().double()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One update of every run: forward, Keras loss (+ L2), backward, update, BN statistics and the
        active mask, all on the device with no host sync; with cfg.compile this is one graph.
        x (M, B, 3, 32, 32), y (M, B); the step's lr and decay are already in the optimizer's buffer
        (PackedOptimizer.load_hyper, outside the step: a tensor, so no step recompiles). Runs whose loss is
        non-finite are frozen (active_t) before the update; train loss and correct counts accumulate
        into loss_sum / correct.  Autograd differentiates the cross-entropy only: the L2 term's value
        is opt.kernel_penalty() and its gradient is added by the optimizer (no autograd op per kernel)."""
        self._step(x, y, self.params, self.opt.v)

    def graph_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """train_step as torch.compile traces it, bit for bit the same arithmetic: the parameters (as
        leaves that share the weights' buffer, like the model's own) and every view the optimizer uses
        are made here, inside the graph, from the optimizer's flat buffers. The graph's inputs are then
        the buffers, the model's buffers and the batch, none aliasing another: AOT autograd would merge
        aliased mutated inputs into synthetic bases without their static marks, and CUDA graphs would
        skip the step (tests/test_step.py reads the compiled graph's input metadata)."""
        params = [p.detach().requires_grad_() for p in self.opt.param_views()]
        self._step(x, y, params, self.opt.views())

    def _step(self, x: torch.Tensor, y: torch.Tensor, params: list[torch.Tensor], views) -> None:
        with self.autocast():
            if params is self.params:
                logits = self.model(x)
            else:   # the model with these tensors as its parameters
                logits = torch.func.functional_call(self.model, dict(zip(self.opt.names, params)), (x,))
        logits = logits.to(self.dtype)
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(self.m, -1).mean(1)
        grads = list(torch.autograd.grad(ce.sum(), params))                    # runs share no parameter
        with torch.no_grad():
            loss = ce + self.opt.kernel_penalty(views) if self.has_l2 else ce  # (M,) Keras loss per run
            finite = torch.isfinite(loss)
            self.active_t.logical_and_(finite)                                 # freeze at the last finite state
            self.opt.update(grads, None, self.active_t, views)
            self.loss_sum.add_(torch.where(finite, loss.double(), torch.nan) * y.shape[1])
            self.correct.add_((logits.argmax(-1) == y).sum(1))

    def _call_step(self, x, y, hparams) -> None:
        """hparams: (3, M) from PackedOptimizer.hyper, on the host."""
        self.opt.load_hyper(hparams)
        if not self.cfg.compile:
            self.step_fn(x, y)
        else:   # Dynamo traces torch.autograd.grad only with this switch on
            with torch._dynamo.config.patch(trace_autograd_ops=True):
                self.step_fn(x, y)
        self.opt.iterations += 1   # on the host, outside the graph: the graph never sees the counter

    def train_epoch(self) -> tuple[np.ndarray, np.ndarray]:
        """One pass over each run's shuffled train split. Returns (train_loss, train_acc) per run."""
        cfg, b = self.cfg, self.cfg.batch_size
        order = epoch_order(self.n_train, self.data_gens).to(self.device)
        if cfg.augment:   # the epoch's flips and crops, drawn and copied at once: no host -> device copy per step
            sizes = [min(b, self.n_train - s * b) for s in range(self.steps_per_epoch)]
            flips, offsets = (d.to(self.device) for d in augment_draws(self.data_gens, sizes))
        self.active_t.copy_(torch.from_numpy(self.active))
        self.model.active = self.active_t  # BN layers hold this tensor; the step narrows it in place
        self.loss_sum.zero_()
        self.correct.zero_()
        self.model.train()
        for s in range(self.steps_per_epoch):
            idx = order[:, s * b:(s + 1) * b]
            x, y = self.data.x_train[idx], self.data.y_train[idx]        # (M, B, 3, 32, 32), (M, B)
            if cfg.augment:
                x = augment(x, draws=(flips[:, s * b:(s + 1) * b], offsets[:, s * b:(s + 1) * b]))
            lr = self.lr0 * schedule_factor(self.step, self.total_steps, cfg.alpha, cfg.schedule)  # host, float64
            self._call_step(x, y, self.opt.hyper(lr, self.wd))           # (3, M) on the host
            self.step += 1
        self.model.active = None
        return (self.loss_sum / self.n_train).cpu().numpy(), (self.correct / self.n_train).cpu().numpy()

    def record(self, epoch: int, train_loss: np.ndarray, train_acc: np.ndarray, started: float) -> None:
        """Evaluate val/test, append one history row per run that was active this epoch.
        `started` is the perf_counter at the start of the epoch: wall time includes evaluation."""
        d = self.data
        val_raw, val_acc = self.evaluate(d.x_val, d.y_val)
        test_raw, test_acc = self.evaluate(d.x_test, d.y_test)
        pen, norms = self._penalty(), metrics.kernel_norms(self.kernels)  # both without autograd
        val_raw, val_acc, test_raw, test_acc, pen, norms = (
            t.cpu().numpy() for t in (val_raw, val_acc, test_raw, test_acc, pen, norms))
        self.wall += time.perf_counter() - started
        # Clocks of the shared schedule shape with lr0 = 1, scaled per run: sum eta = lr0 * sum f_k.
        unit = metrics.clocks([self.step], lr0=1.0, batch_size=1, total_steps=self.total_steps,
                              alpha=self.cfg.alpha, schedule=self.cfg.schedule, l2=1.0)
        s1, s2, f = (float(unit[k][0]) for k in ("t_adapt", "t_sgd", "lr"))
        for i, r in enumerate(self.runs):
            if not self.active[i]:
                continue
            row = {"epoch": epoch, "step": self.step, "train_loss": float(train_loss[i]),
                   "train_acc": float(train_acc[i]), "val_loss": float(val_raw[i] + pen[i]),
                   "val_loss_raw": float(val_raw[i]), "val_acc": float(val_acc[i]),
                   "test_loss": float(test_raw[i] + pen[i]), "test_acc": float(test_acc[i]),
                   "lr": r.lr0 * f, "t_sgd": r.lr0 * (r.lr0 * s2) / r.batch_size,
                   "t_l2": r.l2 * r.lr0 * s1, "t_adapt": r.lr0 * s1, "w_norm": float(metrics.total_norm(norms[i])),
                   "kernel_norms": [float(v) for v in norms[i]], "wall_time": self.wall}
            for k, v in row.items():
                self.history[i][k].append(v)

    def update_fates(self, epoch: int) -> None:
        """Divergence and Keras EarlyStopping (monitor val_loss, min_delta 0) after an epoch."""
        for i, r in enumerate(self.runs):
            if not self.active[i]:
                continue
            h = self.history[i]
            if not np.isfinite(h["train_loss"][-1]):
                self.diverged_epoch[i], self.active[i] = epoch, False
                continue
            if r.patience and epoch >= 1:
                v = h["val_loss"][-1]
                if v < self.es_best[i]:
                    self.es_best[i], self.es_wait[i] = v, 0
                else:
                    self.es_wait[i] += 1
                    if self.es_wait[i] >= r.patience:
                        self.stopped_epoch[i], self.active[i] = epoch, False

    # --- rows for the Parquet ----------------------------------------------------------------
    def epoch_rows(self, after: int) -> list[dict]:
        rows = []
        for r, h in zip(self.runs, self.history):
            for j, e in enumerate(h["epoch"]):
                if e > after:
                    rows.append({"run_id": r.run_id, **{k: h[k][j] for k in HISTORY_KEYS}})
        return rows

    def run_rows(self, finished: bool) -> list[dict]:
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        device_name = (torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu")
        code, dirty = code_version()
        rows = []
        for i, r in enumerate(self.runs):
            h = self.history[i]
            if self.diverged_epoch[i] is not None:
                status = "diverged"
            elif self.stopped_epoch[i] is not None:
                status = "early_stopped"
            else:
                status = "completed" if finished else "running"
            usable = {k: v[: len(v) - (self.diverged_epoch[i] is not None)] for k, v in h.items()}
            summary = metrics.summarize(usable) if len(usable["epoch"]) > 1 else {}
            last = {k: (h[k][-1] if h[k] else None) for k in ("t_sgd", "t_l2", "t_adapt")}
            rows.append({**r.to_dict(), "precision": r.effective_precision, "run_id": r.run_id, "pack_id": self.pack_id, "status": status,
                         "epochs_done": h["epoch"][-1] if h["epoch"] else None,
                         "diverged_epoch": self.diverged_epoch[i], "stopped_epoch": self.stopped_epoch[i],
                         **summary, **last, "n_params": self.n_params, "wall_time_s": self.wall,
                         "initmem_version": initmem.__version__, "code_version": code, "code_dirty": dirty,
                         "data_id": self.data.data_id or None, "torch_version": torch.__version__,
                         "device_name": device_name, "updated_at": now})
        return rows

    # --- checkpoint ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"pack_id": self.pack_id, "run_ids": [r.run_id for r in self.runs],
                "epoch": self.epoch, "step": self.step, "wall": self.wall,
                "model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "data_gens": [g.get_state() for g in self.data_gens],
                "history": self.history, "active": self.active.copy(),
                "diverged_epoch": list(self.diverged_epoch), "stopped_epoch": list(self.stopped_epoch),
                "es_best": self.es_best.copy(), "es_wait": self.es_wait.copy(),
                "written_epoch": self.written_epoch}

    def load_state_dict(self, s: dict) -> None:
        if s["run_ids"] != [r.run_id for r in self.runs]:
            raise ValueError(f"the checkpoint holds pack {s['pack_id']} (runs {s['run_ids']}), "
                             f"not this pack {self.pack_id}; use another checkpoint_dir")
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["opt"])
        for g, st in zip(self.data_gens, s["data_gens"]):
            g.set_state(st)
        self.epoch, self.step, self.wall = s["epoch"], s["step"], s["wall"]
        self.history, self.active = s["history"], s["active"].copy()
        self.diverged_epoch, self.stopped_epoch = list(s["diverged_epoch"]), list(s["stopped_epoch"])
        self.es_best, self.es_wait = s["es_best"].copy(), s["es_wait"].copy()
        self.written_epoch = s["written_epoch"]

    def resume(self, folder: str | os.PathLike) -> bool:
        """Load folder's checkpoint if it has one (True), else leave the pack as it is (False).
        Read to the CPU whatever the pack's device: the data generators' states are CPU ByteTensors
        (Generator.set_state refuses them on a GPU), and load_state_dict copies the rest in place."""
        path = Path(folder) / CHECKPOINT_FILE
        if not path.exists():
            return False
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))
        return True

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{CHECKPOINT_FILE}.tmp-{os.getpid()}"
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, folder / CHECKPOINT_FILE)  # atomic: a reader sees the old or the new file


def release_compiled() -> None:
    """Forget this process's compiled graphs and free their CUDA graph pools (torch._dynamo.reset does
    both), then return the cached blocks to the device. Every PackTrainer compiles the same code
    objects: packs of other shapes trained one after another in one process (a reused Ray worker)
    would otherwise add cache entries until fullgraph=True fails at the recompile limit (8), and keep
    each pack's CUDA graph pool."""
    torch._dynamo.reset()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def train_pack(runs: Sequence[RunConfig], data: Splits, results: str | ResultsWriter | None = None,
               checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int | None = None,
               on_checkpoint: Callable[[int, Path], None] | None = None,
               log: Callable[[str], None] | None = print,
               stop_after_epoch: int | None = None, compile_backend=None) -> list[dict]:
    """Train one pack to the end (or to stop_after_epoch); return its runs-table rows.

    results: a results root (path/URI) or a ResultsWriter; None keeps everything in memory.
    checkpoint_dir: resumed from when it holds a checkpoint; written every `checkpoint_every`
    epochs (None: config.checkpoint_interval's default, epochs // 30) and at the end. stop_after_epoch:
    return after that epoch (rows say status=running). compile_backend: see PackTrainer (tests and bench/gpu_checks.py --cpu pass "aot_eager").
    """
    every = checkpoint_interval(checkpoint_every, runs[0].epochs)  # a ConfigError before anything starts
    log = log or (lambda _msg: None)
    writer = ResultsWriter(results) if isinstance(results, (str, os.PathLike)) else results
    if writer is not None:
        done = writer.finished_rows(pack_id(runs))
        if done:
            log(f"[{pack_id(runs)}] already finished in {writer.root_uri}: not retrained")
            return done
    t = PackTrainer(runs, data, compile_backend)
    try:
        ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None

        if ckpt_dir is not None and t.resume(ckpt_dir):
            log(f"[{t.pack_id}] resumed at epoch {t.epoch} from {ckpt_dir}")
        if writer is not None:
            dropped = writer.drop_epochs_after(t.pack_id, t.written_epoch)  # leftovers of a dead attempt
            if dropped:
                log(f"[{t.pack_id}] removed {len(dropped)} epochs file(s) written after the checkpoint")
            if t.written_epoch < 0:
                writer.write_runs(t.pack_id, t.run_rows(finished=False))

        def checkpoint() -> None:
            if writer is not None:
                writer.write_epochs(t.pack_id, t.epoch_rows(after=t.written_epoch))
                if any(t.stopped_epoch) or any(e is not None for e in t.diverged_epoch):
                    writer.write_runs(t.pack_id, t.run_rows(finished=False))  # status sees a run's fate mid-pack
            t.written_epoch = t.epoch
            if ckpt_dir is not None:
                t.save(ckpt_dir)
            if on_checkpoint is not None:
                on_checkpoint(t.epoch, ckpt_dir)

        cfg = t.cfg
        if t.epoch == 0 and not t.history[0]["epoch"]:
            start = time.perf_counter()
            loss0, acc0 = t.evaluate(t.data.x_train, t.data.y_train)  # before any update
            t.record(0, loss0.cpu().numpy() + t._penalty().cpu().numpy(), acc0.cpu().numpy(), start)
            log(f"[{t.pack_id}] {t.m} run(s) {cfg.arch} x{cfg.width:g} {cfg.norm} {cfg.optimizer} b={cfg.batch_size} "
                f"{cfg.epochs} ep, {t.n_params:,} params/run, {cfg.device} {cfg.effective_precision}; "
                f"epoch 0 val_acc {_fmt(np.array([h['val_acc'][0] for h in t.history]))}")

        while t.epoch < cfg.epochs and t.active.any():
            if stop_after_epoch is not None and t.epoch >= stop_after_epoch:
                break
            start = time.perf_counter()
            train_loss, train_acc = t.train_epoch()
            t.epoch += 1
            t.record(t.epoch, train_loss, train_acc, start)
            t.update_fates(t.epoch)
            last = t.epoch == cfg.epochs or not t.active.any()
            val = np.array([h["val_acc"][-1] if h["epoch"] and h["epoch"][-1] == t.epoch else np.nan
                            for h in t.history])
            log(f"[{t.pack_id}] epoch {t.epoch}/{cfg.epochs} {time.perf_counter() - start:.1f}s "
                f"train_loss {_fmt(train_loss)} val_acc {_fmt(val)} active {int(t.active.sum())}/{t.m}")
            if last or t.epoch % every == 0 or t.epoch == stop_after_epoch:
                checkpoint()

        finished = t.epoch == cfg.epochs or not t.active.any()
        rows = t.run_rows(finished=finished)
        if writer is not None:
            writer.write_runs(t.pack_id, rows)
        return rows
    finally:
        if t.cfg.compile:   # a reused worker process trains other packs next
            release_compiled()
