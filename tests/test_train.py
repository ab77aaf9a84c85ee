"""train_pack: a pack equals its runs trained alone; divergence isolation; exact resume; exactly-once Parquet."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from initmem.config import RunConfig, pack_id
from initmem.data import load_splits
from initmem.results import ResultsWriter, read_epochs, read_runs
from initmem.train import PackTrainer, train_pack

METRICS = ("train_loss", "train_acc", "val_loss", "val_loss_raw", "val_acc", "test_loss", "test_acc",
           "w_norm", "lr", "t_sgd", "t_l2", "t_adapt")


def tiny(**kw) -> RunConfig:
    base = dict(dataset="synthetic", train_subset=48, eval_subset=24, batch_size=16, epochs=2, width=1 / 16,
                precision="fp64", lr0=0.02)
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture(scope="module")
def data():
    return load_splits("synthetic", train_subset=48, eval_subset=24)


def history(rows_or_df, run_id):
    df = rows_or_df if isinstance(rows_or_df, pd.DataFrame) else pd.DataFrame(rows_or_df)
    return df[df.run_id == run_id].sort_values("epoch").reset_index(drop=True)


def train_rows(runs, data, **kw):
    """Train and return the epochs rows (in memory, through a ResultsWriter on a tmp folder)."""
    import tempfile
    root = tempfile.mkdtemp()
    train_pack(runs, data, results=root, log=None, **kw)
    return read_epochs(root)


def four_runs(optimizer, norm, augment, arch="resnet9"):
    decay = optimizer in ("adamw", "muon", "muon_conv")
    lr = (0.002, 0.001, 0.003, 0.0015) if optimizer not in ("sgd", "sgd_momentum") else (0.05, 0.02, 0.08, 0.03)
    return [tiny(optimizer=optimizer, norm=norm, augment=augment, arch=arch, sigma_w=s, seed=k, lr0=l, l2=l2,
                 **({"weight_decay": wd} if decay else {}))
            for s, k, l, l2, wd in zip((0.5, 1.0, 1.7, 2.5), (0, 1, 42, 123), lr,
                                       (0.0, 1e-3, 0.0, 5e-3), (1e-4, 3e-4, 0.0, 1e-3))]


def assert_pack_equals_alone(runs, data):
    pack = train_rows(runs, data)
    for r in runs:
        alone = history(train_rows([r], data), r.run_id)
        packed = history(pack, r.run_id)
        assert list(packed.epoch) == list(range(r.epochs + 1))
        for col in METRICS:
            np.testing.assert_allclose(packed[col], alone[col], rtol=1e-9, atol=1e-12, err_msg=f"{r.run_id} {col}")
        np.testing.assert_allclose(np.stack(packed.kernel_norms), np.stack(alone.kernel_norms), rtol=1e-9)


@pytest.mark.parametrize("optimizer", ["sgd", "sgd_momentum", "adam", "adamw", "muon", "muon_conv"])
@pytest.mark.parametrize("norm, augment", [("batchnorm", False), ("layernorm", True)])
def test_pack_equals_each_run_alone(data, optimizer, norm, augment):
    assert_pack_equals_alone(four_runs(optimizer, norm, augment), data)


@pytest.mark.parametrize("optimizer", ["sgd", "sgd_momentum", "adam", "adamw", "muon", "muon_conv"])
@pytest.mark.parametrize("norm, augment", [("batchnorm", True), ("layernorm", False)])
def test_pack_equals_each_run_alone_other_norm_aug_pairs(data, optimizer, norm, augment):
    assert_pack_equals_alone(four_runs(optimizer, norm, augment), data)


@pytest.mark.parametrize("arch, norm", [("resnet56", "batchnorm"), ("r9_avgpool", "layernorm")])
def test_pack_equals_alone_other_archs(data, arch, norm):
    runs = [r.replace(width=0.25, epochs=1) for r in four_runs("adam", norm, True, arch=arch)[:2]]
    assert_pack_equals_alone(runs, data)


def test_divergence_is_isolated(data):
    sane = [tiny(sigma_w=s, seed=k, lr0=0.05) for s, k in ((0.5, 0), (1.0, 1), (2.0, 2))]
    absurd = [sane[0], sane[1].replace(lr0=1e300), sane[2]]  # overflows float64 within epoch 1
    rows_absurd = train_pack(absurd, data, log=None)
    bad = rows_absurd[1]
    assert bad["status"] == "diverged" and bad["diverged_epoch"] == 1 and bad["epochs_done"] == 1
    assert all(r["status"] == "completed" for r in (rows_absurd[0], rows_absurd[2]))
    e_absurd, e_sane = train_rows(absurd, data), train_rows(sane, data)
    assert not math.isfinite(history(e_absurd, absurd[1].run_id).train_loss.iloc[-1])
    assert history(e_absurd, absurd[1].run_id).epoch.max() == 1  # no rows after the divergence epoch
    for r in (sane[0], sane[2]):  # pack-mates: bit-identical to the same pack without the absurd lr0
        a, b = history(e_absurd, r.run_id), history(e_sane, r.run_id)
        for col in METRICS:
            assert a[col].tolist() == b[col].tolist(), col
        assert a.kernel_norms.map(list).tolist() == b.kernel_norms.map(list).tolist()
    # and equal (to reassociation) to a pack that never held the diverging run
    without = train_rows([sane[0], sane[2]], data)
    for r in (sane[0], sane[2]):
        np.testing.assert_allclose(history(without, r.run_id).val_loss, history(e_sane, r.run_id).val_loss,
                                   rtol=1e-12)


def test_resume_is_bit_identical_and_parquet_exactly_once(data, tmp_path):
    runs = [tiny(optimizer="adam", augment=True, epochs=4, sigma_w=s, seed=k, lr0=2e-3)
            for s, k in ((0.5, 0), (2.0, 1))]
    full_root = tmp_path / "full"
    full = train_pack(runs, data, results=str(full_root), checkpoint_dir=tmp_path / "ck_full", log=None)

    root, ckpt = tmp_path / "resumed", tmp_path / "ck"
    partial = train_pack(runs, data, results=str(root), checkpoint_dir=ckpt, checkpoint_every=2,
                         stop_after_epoch=3, log=None)
    assert {r["status"] for r in partial} == {"running"}
    # an attempt that died after writing epoch 4's rows but before its checkpoint left a file behind
    writer = ResultsWriter(str(root))
    stale = history(read_epochs(str(full_root)), runs[0].run_id).iloc[[4]].to_dict("records")
    writer.write_epochs(pack_id(runs), stale)
    resumed = train_pack(runs, data, results=str(root), checkpoint_dir=ckpt, log=None)

    a, b = read_epochs(str(full_root)), read_epochs(str(root))
    assert len(b) == len(runs) * 5 and not b.duplicated(["run_id", "epoch"]).any()
    cols = [c for c in a.columns if c != "wall_time"]
    key = ["run_id", "epoch"]
    pd.testing.assert_frame_equal(a.sort_values(key)[cols].reset_index(drop=True),
                                  b.sort_values(key)[cols].reset_index(drop=True), check_exact=True)
    volatile = ("wall_time_s", "updated_at")
    assert [{k: v for k, v in r.items() if k not in volatile} for r in full] == \
           [{k: v for k, v in r.items() if k not in volatile} for r in resumed]
    assert len(read_runs(str(root))) == 2


def test_finished_pack_is_not_retrained(data, tmp_path):
    runs = [tiny(epochs=1)]
    train_pack(runs, data, results=str(tmp_path), log=None)
    before = read_epochs(str(tmp_path))
    logs = []
    train_pack(runs, data, results=str(tmp_path), log=logs.append)
    assert any("not retrained" in m for m in logs)
    pd.testing.assert_frame_equal(before, read_epochs(str(tmp_path)))


def test_runs_table_summaries_match_the_epochs_table(data, tmp_path):
    runs = [tiny(epochs=3, sigma_w=s, lr0=0.1) for s in (0.5, 1.5)]
    train_pack(runs, data, results=str(tmp_path), log=None)
    runs_df, epochs = read_runs(str(tmp_path)), read_epochs(str(tmp_path))
    for _, r in runs_df.iterrows():
        h = history(epochs, r.run_id)
        tb = int(h.val_loss.iloc[1:].idxmin())
        assert r.tau_best == tb and r.test_acc == h.test_acc[tb] and r.val_acc_best == h.val_acc[tb]
        assert r.w_norm_init == h.w_norm[0] and r.status == "completed" and r.epochs_done == 3
        hits = h.index[(h.train_acc >= 0.995) & (h.epoch >= 1)]
        assert (pd.isna(r.tau_interp) and len(hits) == 0) or r.tau_interp == hits[0]
        assert r.sigma_w in (0.5, 1.5) and r.n_params > 0
    # the recorded clocks are the cumulative sums of the cosine schedule actually used
    h = history(epochs, runs[0].run_id)
    K = 3 * 3
    eta = 0.1 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * np.arange(K) / K)))
    np.testing.assert_allclose(h.t_adapt.iloc[-1], eta.sum(), rtol=1e-12)
    np.testing.assert_allclose(h.t_sgd.iloc[-1], (eta ** 2).sum() / 16, rtol=1e-12)
    assert h.step.tolist() == [0, 3, 6, 9]


def test_l2_penalty_enters_train_and_val_loss(data):
    runs = [tiny(l2=0.0, epochs=1), tiny(l2=1e-2, epochs=1)]
    t = PackTrainer(runs, data)
    pen = t._penalty()
    assert pen[0] == 0 and pen[1] > 0
    rows = train_rows(runs, data)
    with_l2 = history(rows, runs[1].run_id)
    assert (with_l2.val_loss - with_l2.val_loss_raw > 0).all()
    assert (history(rows, runs[0].run_id).val_loss == history(rows, runs[0].run_id).val_loss_raw).all()


def test_early_stopping_follows_keras(data):
    t = PackTrainer([tiny(patience=2, seed=0), tiny(patience=2, seed=1)], data)
    t.history[0]["train_loss"] = [1.0] * 6
    t.history[1]["train_loss"] = [1.0] * 6
    curves = ([9, 5, 4, 4.5, 3.9, 3], [9, 5, 6, 7, 8, 9])  # run 0 improves in time; run 1 does not
    for e in range(1, 6):
        for i in (0, 1):
            t.history[i]["val_loss"] = curves[i][:e + 1]
        t.update_fates(e)
    assert t.stopped_epoch == [None, 3] and t.active.tolist() == [True, False]


def test_early_stopped_run_stops_while_pack_mates_go_on(data):
    runs = [tiny(patience=1, epochs=6, lr0=0.3, norm="layernorm", sigma_w=s, seed=k) for s, k in ((2.5, 0), (0.3, 1))]
    rows = train_pack(runs, data, log=None)
    stopped = [r for r in rows if r["status"] == "early_stopped"]
    assert stopped, "the lr was chosen so that at least one run's val loss stalls"
    pack = train_rows(runs, data)
    for r, row in zip(runs, rows):
        alone = history(train_rows([r], data), r.run_id)
        np.testing.assert_allclose(history(pack, r.run_id).val_loss, alone.val_loss, rtol=1e-9)
        if row["status"] == "early_stopped":
            assert row["stopped_epoch"] == row["epochs_done"] < 6
            assert row["stopped_epoch"] - row["tau_best"] == 1


def test_precision_bf16_runs_on_cpu(data):
    rows = train_pack([tiny(precision="bf16", epochs=1)], data, log=None)
    assert rows[0]["status"] == "completed" and math.isfinite(rows[0]["val_loss_best"])


def test_checkpoint_of_another_pack_is_refused(data, tmp_path):
    train_pack([tiny(epochs=1)], data, checkpoint_dir=tmp_path, log=None)
    with pytest.raises(ValueError, match="not this pack"):
        train_pack([tiny(epochs=1, seed=5)], data, checkpoint_dir=tmp_path, log=None)


def test_resume_reads_the_checkpoint_to_the_cpu_whatever_the_device(data, tmp_path):
    # issue 17, finding 1: on CUDA, torch.load(map_location=<the pack's device>) moved the saved CPU
    # generator states to the GPU and Generator.set_state raised "RNG state must be a torch.ByteTensor".
    # A trainer whose device is "meta" stands in for the GPU here (its generators stay on the CPU).
    runs = [tiny(augment=True, epochs=2, seed=k) for k in (0, 1)]
    t = PackTrainer(runs, data)
    t.train_epoch()
    t.epoch = 1
    t.save(tmp_path)
    resumed = PackTrainer(runs, data)
    resumed.device = torch.device("meta")      # only where the checkpoint would be mapped to
    assert resumed.resume(tmp_path) and resumed.epoch == 1
    for g, h in zip(resumed.data_gens, t.data_gens):
        assert torch.equal(g.get_state(), h.get_state())
    for p, q in zip(resumed.params, t.params):
        assert p.device.type == "cpu" and torch.equal(p, q)
    for name, slots in t.opt.state.items():
        for slot, v in slots.items():
            assert torch.equal(resumed.opt.state[name][slot], v)
    assert not PackTrainer(runs, data).resume(tmp_path / "empty")


@pytest.mark.no_cluster
@pytest.mark.slow   # ~20-30 s on 2 loaded cores: six compilations
def test_compiled_packs_one_after_another_in_one_process(data, tmp_path):
    # issue 17, finding 5: every PackTrainer compiles the same graph_step code object, so packs of other
    # shapes trained in one process (a reused Ray worker) add cache entries (two each here: a full and a
    # partial batch) until fullgraph=True fails with FailOnRecompileLimitHit (limit 8; 2 here, to see it
    # with three packs), and their CUDA graph pools are never freed. train_pack resets dynamo at its end.
    import torch._dynamo
    from torch._dynamo.backends.debugging import aot_eager
    torch._dynamo.reset()
    data40 = load_splits("synthetic", train_subset=40, eval_subset=24)
    with torch._dynamo.config.patch(recompile_limit=2):
        for m in (1, 2, 3):
            runs = [tiny(train_subset=40, epochs=1, seed=10 * m + k, compile=True) for k in range(m)]
            rows = train_pack(runs, data40, log=None, compile_backend=aot_eager)
            ref = train_pack([r.replace(compile=False) for r in runs], data40, log=None)
            for a, b in zip(rows, ref):
                assert a["status"] == "completed"
                assert a["val_loss_best"] == b["val_loss_best"] and a["test_acc"] == b["test_acc"]
    torch._dynamo.reset()
