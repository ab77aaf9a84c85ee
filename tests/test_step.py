"""One training step (PackTrainer.train_step): ops dispatched per step, no host sync, one graph.

The counter is a TorchDispatchMode written here: it sees every aten op the step dispatches
(forward, loss, backward, update, BN statistics, active mask), one per kernel launch in eager.
"""

from __future__ import annotations

import collections
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from initmem.config import RunConfig
from initmem.data import load_splits
from initmem.optim import MUON_NS_STEPS
from initmem.train import PackTrainer

ALL_OPTS = ("sgd", "sgd_momentum", "adam", "adamw", "muon", "muon_conv")
OPT_OPS_GOAL = 30          # issue 10: the optimizer's ops per step (Newton-Schulz's matmuls aside, below)
STEP_OPS_GOAL = 400        # issue 10: the whole step, sgd and adam, any pack size, with or without L2
# Newton-Schulz per group of equal-shape kernels: norm, + eps, divide, then per iteration one bmm
# (A = X X^T) and two baddbmm, on buffers whose transposes are views made once; then * scale.
# 5 iterations of 3 dependent matmuls are the floor for one shape in eager mode: fewer launches
# would need kernels of different shapes padded to one (see the note in initmem/optim.py).
NS_MATMULS_PER_GROUP = 3 * MUON_NS_STEPS
NS_OPS_PER_GROUP = 3 + NS_MATMULS_PER_GROUP + 1
SYNC_OPS = {"aten._local_scalar_dense", "aten.nonzero", "aten.masked_select", "aten.item"}


class OpCounter(TorchDispatchMode):
    """Counts dispatched aten ops by name; records host syncs (a scalar read, an op whose output
    size depends on data) and copies between devices."""

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()
        self.crossings = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket)
        self.ops[name] += 1
        out = func(*args, **kwargs)
        devices = {t.device.type for t in torch.utils._pytree.tree_leaves((args, kwargs, out))
                   if isinstance(t, torch.Tensor) and t.dim() > 0}
        if len(devices) > 1:
            self.crossings.append((name, sorted(devices)))
        return out

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def syncs(self) -> int:
        return sum(self.ops[n] for n in SYNC_OPS) + len(self.crossings)


@pytest.fixture(scope="module")
def data():
    return load_splits("synthetic", train_subset=48, eval_subset=16)


def trainer(data, optimizer, m, **kw) -> PackTrainer:
    runs = [RunConfig(dataset="synthetic", train_subset=48, eval_subset=16, batch_size=16, width=1 / 16,
                      optimizer=optimizer, seed=i, sigma_w=0.5 + i, epochs=2, **kw) for i in range(m)]
    return PackTrainer(runs, data)


def one_step(t: PackTrainer, counter: OpCounter | None = None) -> None:
    """One step of train_epoch's loop, the batch already cut (data indexing is not the step)."""
    x = t.data.x_train[:16].expand(t.m, 16, 3, 32, 32).contiguous()
    y = t.data.y_train[:16].expand(t.m, 16).contiguous()
    t.model.train()
    t.model.active = t.active_t
    t.opt.load_hyper(t.opt.hyper(np.full(t.m, 1e-3), t.wd))   # the step's input (H2D on CUDA), not the step
    with counter if counter is not None else nullcontext():
        t.train_step(x, y)
    t.opt.iterations += 1


def n_muon_groups(t: PackTrainer) -> int:
    return len(t.opt.muon_groups)


def count_step_and_update(t: PackTrainer) -> tuple[OpCounter, OpCounter]:
    """The ops of one whole step, and of the optimizer's update alone as the step dispatches it
    (hyperparameters already loaded), after one uncounted step (lazy initialisations)."""
    one_step(t)
    step = OpCounter()
    one_step(t, step)
    grads = [torch.randn_like(p) for p in t.params]
    t.opt.load_hyper(t.opt.hyper(np.full(t.m, 1e-3), t.wd))
    upd = OpCounter()
    with upd:
        t.opt.update(grads, None, t.active_t)
    return step, upd


@pytest.mark.parametrize("l2", (0.0, 5e-4))
@pytest.mark.parametrize("m", (1, 8))
@pytest.mark.parametrize("optimizer", ALL_OPTS)
def test_ops_per_step_within_the_goals(data, optimizer, m, l2):
    t = trainer(data, optimizer, m, l2=l2)
    assert t.opt.has_l2 == (l2 > 0)
    step, upd = count_step_and_update(t)
    groups = n_muon_groups(t)
    assert upd.total - NS_OPS_PER_GROUP * groups <= OPT_OPS_GOAL, (optimizer, m, upd.total, upd.ops.most_common(12))
    assert upd.ops["aten.bmm"] + upd.ops["aten.baddbmm"] == NS_MATMULS_PER_GROUP * groups
    assert upd.ops["aten.linalg_vector_norm"] == groups and not upd.ops["aten.transpose"]
    assert upd.ops["aten._foreach_copy_"] == 1            # all gradients in one multi-tensor copy
    if optimizer in ("sgd", "adam"):
        assert step.total <= STEP_OPS_GOAL, (optimizer, m, step.total, step.ops.most_common(12))
    # the step's op count does not grow with the pack
    assert step.syncs == 0 and upd.syncs == 0
    if optimizer in ("muon", "muon_conv"):
        assert n_muon_groups(t) == (1 if optimizer == "muon" else 7)  # ResNet-9: 6 conv shapes + the head


def test_the_op_count_does_not_depend_on_the_pack_size(data):
    counts = []
    for m in (1, 3):
        t = trainer(data, "adamw", m)
        one_step(t)
        c = OpCounter()
        one_step(t, c)
        counts.append(c.total)
    assert abs(counts[0] - counts[1]) <= 4, counts     # equal up to a few pack-size-1 view shortcuts


def test_the_counter_sees_a_host_sync_and_a_device_copy():
    # the verdict "no host sync" must be able to fail: a step that reads a scalar is caught
    c = OpCounter()
    with c:
        x = torch.randn(4)
        if float(x.sum()) > 1e9:           # .item() -> aten._local_scalar_dense
            x = x + 1
        torch.nonzero(x > 0)
    assert c.syncs >= 2 and c.ops["aten._local_scalar_dense"] == 1
    d = OpCounter()
    with d:
        torch.randn(3).to("meta")          # a copy to another device
    assert d.crossings


@pytest.mark.parametrize("optimizer", ("adamw", "muon_conv"))
def test_no_host_sync_inside_a_step_even_when_a_run_diverges(data, optimizer):
    t = trainer(data, optimizer, 3, lr0=1e-3)
    one_step(t)
    with torch.no_grad():                   # run 1 diverges: NaN weights, its mask turns off in the step
        t.params[0][1].fill_(float("nan"))
    c = OpCounter()
    one_step(t, c)
    assert c.syncs == 0, (c.ops, c.crossings)
    assert t.active_t.tolist() == [True, False, True]


def test_the_optimizer_counter_advances_once_per_step(data):
    t = trainer(data, "adam", 2)
    t.train_epoch()
    assert t.opt.iterations == t.step == 3


@pytest.mark.parametrize("optimizer, l2", (("adamw", 0.0), ("adam", 1e-3),   # adam reads a view of the weights
                                           pytest.param("muon", 0.0, marks=(pytest.mark.slow, pytest.mark.no_cluster)),
                                           pytest.param("muon_conv", 5e-4, marks=(pytest.mark.slow, pytest.mark.no_cluster))))
def test_compiled_step_is_one_graph_bit_identical_and_never_recompiles(data, optimizer, l2):
    # torch.compile(fullgraph=True) of the whole step; aot_eager needs no code generation (fast on CPU)
    import torch._dynamo
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    runs = [RunConfig(dataset="synthetic", train_subset=48, eval_subset=16, batch_size=16, width=1 / 16,
                      optimizer=optimizer, seed=i, sigma_w=0.5 + i, lr0=2e-3 * (i + 1), epochs=2,
                      precision="fp64", compile=True, l2=l2 * (i % 2)) for i in range(3)]
    comp = PackTrainer(runs, data, compile_backend="aot_eager")
    eager = PackTrainer([r.replace(compile=False) for r in runs], data)
    assert comp.step_fn is not comp.train_step and eager.step_fn == eager.train_step
    with torch._dynamo.config.patch(error_on_recompile=True):   # lr, mask and counters never recompile
        for epoch in range(2):
            if epoch == 1:                                   # a run frozen by the host: the mask is data
                comp.active[2] = eager.active[2] = False
            a, b = comp.train_epoch(), eager.train_epoch()
            np.testing.assert_array_equal(a[0], b[0])
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]
    for p, q in zip(comp.params, eager.params):
        assert torch.equal(p, q)
    for name in comp.opt.state:
        for slot, st in comp.opt.state[name].items():
            assert torch.equal(st, eager.opt.state[name][slot]), (name, slot)
    torch._dynamo.reset()


def test_augmentation_copies_nothing_host_to_device_per_step(data):
    # issue 17, finding 6: augment() copied each step's flips and crop offsets host -> device with two
    # blocking .to(device) (a stream drain each on CUDA). Here the pack's data sit on "meta", a device
    # other than the generators' CPU, so every host -> device copy of an epoch is a crossing the counter sees.
    from initmem.data import Splits
    t = trainer(data, "sgd", 2, augment=True)
    assert t.steps_per_epoch == 3
    d = t.data
    t.data = Splits(*(x.to("meta") for x in (d.x_train, d.y_train, d.x_val, d.y_val, d.x_test, d.y_test)))
    t.device = torch.device("meta")
    t._call_step = lambda x, y, hparams: None          # the batches, not the step
    c = OpCounter()
    with c:
        t.train_epoch()
    assert len(c.crossings) <= 3, c.crossings           # per epoch: the order, the flips, the offsets


@pytest.mark.parametrize("optimizer, l2", (("adamw", 5e-4), ("muon_conv", 0.0)))
def test_compiled_step_inputs_are_static_for_cuda_graphs(data, optimizer, l2, bench_script):
    # issue 17, finding 3: the step read cached views of the flat buffers and parameters sharing their
    # storage; AOT autograd merged those aliased, mutated inputs into synthetic bases that carry no static
    # index (seen: 37 inputs, 27 mutated, 0 static), and inductor's CUDA graphs skip a graph that mutates a
    # non-static input. Every input but the batch (x, y) must be static, every mutated one above all.
    import torch._dynamo
    torch._dynamo.reset()
    records: list = []
    runs = [RunConfig(dataset="synthetic", train_subset=48, eval_subset=16, batch_size=16, width=1 / 16,
                      optimizer=optimizer, seed=i, l2=l2 * i, epochs=1, compile=True) for i in range(2)]
    # AOT autograd as inductor runs it, no code generation: records each graph's forward metadata
    t = PackTrainer(runs, data, compile_backend=bench_script("gpu_checks").static_input_probe(records))
    t.train_epoch()
    torch._dynamo.reset()
    assert len(records) == 1, records                       # one graph for the epoch's three steps
    r = records[0]
    assert r["mutated"] and r["mutated"] <= r["static"], r
    assert r["inputs"] - len(r["static"]) == 2, r            # only x and y are copied in by a CUDA graph


def test_a_partial_last_batch_gets_its_own_static_graph_and_never_makes_shapes_symbolic():
    # issue 17, finding 4: 40 images at b = 16 leave a last batch of 8. The second shape recompiled, and
    # automatic dynamic shapes made the batch dimension symbolic: every later step then ran the symbolic
    # graph. Compiled with dynamic=False: one static graph per batch shape, both made in epoch 1, none after.
    import torch._dynamo
    from torch._dynamo.backends.debugging import aot_eager
    torch._dynamo.reset()
    graphs = []

    def recording(gm, example_inputs):
        graphs.append(any(isinstance(a, torch.SymInt) or (isinstance(a, torch.Tensor) and any(
            isinstance(d, torch.SymInt) for d in a.shape)) for a in example_inputs))
        return aot_eager(gm, example_inputs)
    data40 = load_splits("synthetic", train_subset=40, eval_subset=16)
    runs = [RunConfig(dataset="synthetic", train_subset=40, eval_subset=16, batch_size=16, width=1 / 16, epochs=2,
                      optimizer="adam", seed=i, precision="fp64", compile=True) for i in range(2)]
    comp = PackTrainer(runs, data40, compile_backend=recording)
    eager = PackTrainer([r.replace(compile=False) for r in runs], data40)
    assert comp.steps_per_epoch == 3
    np.testing.assert_array_equal(comp.train_epoch()[0], eager.train_epoch()[0])
    assert graphs == [False, False]                        # b = 16 and b = 8, both static
    with torch._dynamo.config.patch(error_on_recompile=True):
        np.testing.assert_array_equal(comp.train_epoch()[0], eager.train_epoch()[0])
    assert len(graphs) == 2
    for p, q in zip(comp.params, eager.params):
        assert torch.equal(p, q)
    torch._dynamo.reset()
