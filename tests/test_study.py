"""initmem.study: the six SPEC experiments, their presets, and the run_ids the paper's runs keep."""

import hashlib

import pytest

from initmem.config import ConfigError
from initmem.study import EXPERIMENTS, OPT5, SEEDS10, SIGMA5, SIGMA25, SMOKE_BATCH, SMOKE_SGD_LR0, smoke_epochs

SPEC_COUNTS = {"main_grid": 6_250, "long_sgd": 10, "lr_l2": 1_200, "norm_aug": 200, "best_recipe": 120, "depth": 1_500}


def values(runs, field):
    return sorted({getattr(r, field) for r in runs}, key=lambda v: (str(type(v)), v))


@pytest.fixture(scope="module")
def full():
    return {name: e.runs("full") for name, e in EXPERIMENTS.items()}


@pytest.fixture(scope="module")
def smoke():
    return {name: e.runs("smoke") for name, e in EXPERIMENTS.items()}


def test_exact_run_counts(full):
    assert set(EXPERIMENTS) == set(SPEC_COUNTS)
    for name, n in SPEC_COUNTS.items():
        assert len(full[name]) == n == EXPERIMENTS[name].expected_runs, name
        assert len({r.run_id for r in full[name]}) == n, f"{name}: duplicate run_ids"
        assert {r.experiment for r in full[name]} == {name}


def test_axes_are_the_papers():
    assert SEEDS10 == (0, 1, 42, 123, 456, 789, 999, 2024, 2025, 2026)
    assert SIGMA25 == tuple(round(0.1 * i, 1) for i in range(1, 26)) and SIGMA25[2] == 0.3  # exact decimals
    assert SIGMA5 == (0.1, 0.5, 1.0, 1.8, 2.5)
    assert OPT5 == ("sgd", "sgd_momentum", "adam", "adamw", "muon")


def test_main_grid(full):
    runs = full["main_grid"]
    assert values(runs, "arch") == ["resnet9"] and values(runs, "batch_size") == [16, 32, 64, 128, 256]
    assert len(values(runs, "sigma_w")) == 25 and len(values(runs, "seed")) == 10
    assert {(r.epochs, r.schedule, r.lr0, r.alpha, r.augment, r.norm, r.l2) for r in runs} == \
        {(300, "cosine", 1e-3, 0.01, False, "batchnorm", 0.0)}
    wd = {r.optimizer: r.weight_decay for r in runs}
    assert wd == {"sgd": 0.0, "sgd_momentum": 0.0, "adam": 0.0, "adamw": 1e-4, "muon": 1e-4}


def test_ablations(full):
    long = full["long_sgd"]
    assert {(r.optimizer, r.schedule, r.lr0, r.epochs, r.seed) for r in long} == {("sgd", "constant", 1e-3, 5000, 42)}
    lr = full["lr_l2"]
    assert values(lr, "lr0") == [1e-3, 1e-2, 1e-1] and values(lr, "l2") == [0.0, 1e-3, 5e-3, 1e-2]
    assert values(lr, "optimizer") == ["sgd"] and values(lr, "batch_size") == [16, 128]
    na = full["norm_aug"]
    assert values(na, "norm") == ["batchnorm", "layernorm"] and values(na, "augment") == [True]
    assert values(na, "seed") == [0, 1, 42, 123, 456]


def test_best_recipe_uses_l2_penalty_not_decay(full):
    runs = full["best_recipe"]
    sgdm = [r for r in runs if r.optimizer == "sgd_momentum"]
    adam = [r for r in runs if r.optimizer == "adam"]
    assert len(sgdm) == len(adam) == 60
    assert {(r.lr0, r.momentum, r.l2, r.weight_decay) for r in sgdm} == {(0.1, 0.9, 5e-4, 0.0)}
    assert {(r.lr0, r.l2) for r in adam} == {(1e-3, 0.0)}
    assert {(r.epochs, r.augment, r.schedule) for r in runs} == {(200, True, "cosine")}
    assert values(runs, "sigma_w") == [0.1, 2.5] and values(runs, "batch_size") == [16, 128, 256]


def test_depth_patience(full):
    runs = full["depth"]
    assert {(r.arch, r.patience) for r in runs} == {("resnet56", 30), ("resnet110", 30), ("r9_avgpool", 0)}
    assert len([r for r in runs if r.arch == "r9_avgpool"]) == 500


def test_smoke_presets_are_tiny_and_same_shape(full, smoke):
    for name, runs in smoke.items():
        assert 1 <= len(runs) <= 24, name
        assert {r.experiment for r in runs} == {name} and EXPERIMENTS[name].label("smoke") == f"{name}_smoke"
        assert all(r.width == 0.125 and r.eval_subset == 500 and r.train_subset == 2400 for r in runs), name
        # enough updates for Keras BN's moving statistics (momentum 0.99) to settle, and not many more
        assert all(r.epochs >= 2 and 300 <= r.total_steps < 400 for r in runs), (name, values(runs, "total_steps"))
        assert all(r.total_steps == r.epochs * -(-2400 // r.batch_size) for r in runs), name
        assert len(values(runs, "seed")) == 1 and len(values(runs, "sigma_w")) == 2, name
        assert values(runs, "sigma_w") == ([1.0, 2.5] if {1.0, 2.5} <= set(values(full[name], "sigma_w"))
                                           else [min(values(full[name], "sigma_w")), max(values(full[name], "sigma_w"))])
        # same shape: every field that varies in the smoke varies in the full experiment, and the
        # fields the full one holds fixed (but the smoke size fields) are equal
        for field in ("arch", "norm", "augment", "optimizer", "schedule", "patience", "momentum", "l2"):
            assert set(values(runs, field)) <= set(values(full[name], field)), (name, field)
        # learning rates are the full grid's, except plain sgd at 1e-3, which a smoke trains at 1e-2
        full_lr = {o: set(values([r for r in full[name] if r.optimizer == o], "lr0")) for o in values(runs, "optimizer")}
        for r in runs:
            expect = {SMOKE_SGD_LR0} if r.optimizer == "sgd" and full_lr["sgd"] == {1e-3} else full_lr[r.optimizer]
            assert r.lr0 in expect, (name, r.optimizer, r.lr0)
        assert set(values(runs, "batch_size")) <= set(SMOKE_BATCH) and len(values(runs, "batch_size")) <= 2
        if len(values(full[name], "batch_size")) > 1 and name in ("main_grid", "long_sgd"):  # the others: b=16 only
            assert values(runs, "batch_size") == [16, 32], name
    assert len(smoke["main_grid"]) == 20 and values(smoke["main_grid"], "optimizer") == sorted(OPT5)
    assert {(r.optimizer, r.lr0) for r in smoke["main_grid"]} == {("sgd", 1e-2), ("sgd_momentum", 1e-3), ("adam", 1e-3),
                                                                   ("adamw", 1e-3), ("muon", 1e-3)}
    assert {(r.batch_size, r.epochs) for r in smoke["main_grid"]} == {(16, 2), (32, 4)}
    for name in ("depth", "norm_aug", "lr_l2", "best_recipe"):  # cost: one b (a b=32 run costs two b=16 ones)
        assert values(smoke[name], "batch_size") == [16], name
    assert values(smoke["long_sgd"], "batch_size") == [16, 32] and len(smoke["lr_l2"]) == 8
    assert values(smoke["norm_aug"], "norm") == ["batchnorm", "layernorm"] and len(smoke["norm_aug"]) == 8
    assert values(smoke["depth"], "arch") == ["r9_avgpool", "resnet110", "resnet56"] and len(smoke["depth"]) == 6
    assert values(smoke["lr_l2"], "lr0") == [1e-3, 1e-1]  # an lr0 axis is the experiment's question: kept
    sgdm = [r for r in smoke["best_recipe"] if r.optimizer == "sgd_momentum"]
    assert {(r.lr0, r.l2, r.momentum) for r in sgdm} == {(0.1, 5e-4, 0.9)}


def test_smoke_epochs_give_the_updates():
    assert [smoke_epochs(b) for b in (16, 32, 64, 128)] == [2, 4, 8, 16]
    assert smoke_epochs(16, n_train=10_000) == 2  # never fewer than two epochs
    for b in (8, 16, 32, 50, 64, 128, 256):
        e = smoke_epochs(b)
        assert e * -(-2400 // b) >= 300 and (e == 2 or (e - 1) * -(-2400 // b) < 300), b


def test_unknown_preset():
    with pytest.raises(ConfigError, match=r"preset='huge' is not allowed: one of \['full', 'smoke', 'mini'\]"):
        EXPERIMENTS["main_grid"].runs("huge")


# sha256 of the sorted run_ids of every preset, as the code computed them before the study moved into
# initmem (commit c47080c): results written before keep their identity (run_id hashes the science
# fields; a change here would make every finished run look new and train again). The lr_l2 and
# best_recipe smokes were cut to b=16 on purpose later (their b=16 runs' ids are unchanged).
RUN_ID_DIGESTS = {
    ("main_grid", "full"): (6250, "143ac32e0477af25"), ("main_grid", "smoke"): (20, "7c1b44045b897d6a"),
    ("long_sgd", "full"): (10, "197a3e5118f1f2f5"), ("long_sgd", "smoke"): (4, "a97f287af9df0554"),
    ("lr_l2", "full"): (1200, "e31c1165d6a260ac"), ("lr_l2", "smoke"): (8, "eb281bbf6b3be28e"),
    ("norm_aug", "full"): (200, "f9426b3bcb715fec"), ("norm_aug", "smoke"): (8, "21e6c569b38b22d2"),
    ("best_recipe", "full"): (120, "52cff4ca7f273f58"), ("best_recipe", "smoke"): (4, "bd5630ee68a7d26a"),
    ("depth", "full"): (1500, "18092c94d04287a8"), ("depth", "smoke"): (6, "68f2af5c2ae240c8"),
}


@pytest.mark.parametrize("name, preset", sorted(RUN_ID_DIGESTS))
def test_the_papers_run_ids_are_pinned(name, preset):
    ids = sorted(r.run_id for r in EXPERIMENTS[name].runs(preset))
    assert (len(ids), hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]) == RUN_ID_DIGESTS[(name, preset)]


def test_a_few_run_ids_by_value():
    """Three runs spelled out (the digest above says that something moved; these say which)."""
    first = EXPERIMENTS["main_grid"].runs("full")[0]
    assert (first.optimizer, first.batch_size, first.sigma_w, first.seed) == ("sgd", 16, 0.1, 0)
    assert first.run_id == "772174f4b423c02d"
    assert EXPERIMENTS["long_sgd"].runs("full")[0].run_id == "6f29a079b1ad465f"
    assert EXPERIMENTS["depth"].runs("full")[-1].run_id == "d7db50d517a78498"




def test_mini_presets_keep_the_science_and_cut_the_size(full):
    mini = {name: e.runs("mini") for name, e in EXPERIMENTS.items()}
    assert {n: len(r) for n, r in mini.items()} == {"main_grid": 120, "long_sgd": 10, "lr_l2": 150, "norm_aug": 120,
                                                    "best_recipe": 24, "depth": 180}
    for name, runs in mini.items():
        assert EXPERIMENTS[name].label("mini") == f"{name}_mini"
        assert all((r.width, r.train_subset, r.eval_subset) == (0.125, 256, 200) for r in runs), name
        full_sig = set(values(full[name], "sigma_w"))
        assert set(values(runs, "sigma_w")) == (set(SIGMA5) if set(SIGMA5) <= full_sig else full_sig), name
        assert len(values(runs, "seed")) == min(3, len(values(full[name], "seed"))), name
        if len(values(full[name], "batch_size")) > 1:
            assert values(runs, "batch_size") == [16, 128], name
        # the science fields are the paper's: optimizer, lr0 (one extra lr_l2 setting, labelled), schedule, ...
        for field in ("arch", "norm", "augment", "optimizer", "schedule", "momentum", "weight_decay"):
            assert set(values(runs, field)) <= set(values(full[name], field)), (name, field)
        extra = {(r.lr0, r.l2) for r in runs} - {(r.lr0, r.l2) for r in full[name]}
        assert extra == ({(0.1, 0.6)} if name == "lr_l2" else set()), (name, extra)
    assert values(mini["main_grid"], "epochs") == [40] and values(mini["long_sgd"], "epochs") == [400]
    assert {(r.optimizer, r.lr0) for r in mini["main_grid"]} == {(o, 1e-3) for o in OPT5 if o != "muon"}  # no smoke lr swap
    assert values(mini["depth"], "patience") == [0, 4] and values(mini["best_recipe"], "epochs") == [27]
