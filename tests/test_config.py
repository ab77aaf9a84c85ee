"""RunConfig: validation names field, value and what is allowed; run_id and pack key."""

import pytest

from initmem.config import (ConfigError, RunConfig, check_pack, group_into_packs, pack_id)


@pytest.mark.parametrize("field, value, allowed", [
    ("sigma_w", 0.0, "> 0"),
    ("sigma_w", -1.0, "> 0"),
    ("optimizer", "rmsprop", "one of"),
    ("arch", "resnet18", "one of"),
    ("norm", "groupnorm", "one of"),
    ("schedule", "step", "one of"),
    ("precision", "fp16", "one of"),
    ("dataset", "mnist", "one of"),
    ("batch_size", 0, ">= 1"),
    ("epochs", 0, ">= 1"),
    ("lr0", 0.0, "> 0"),
    ("alpha", 1.5, "[0, 1]"),
    ("l2", -1e-3, ">= 0"),
    ("momentum", 1.0, "[0, 1)"),
    ("seed", -1, "[0, 2**31)"),
    ("patience", -2, ">= 0"),
    ("train_subset", 50_000, "[0, 40000]"),
    ("eval_subset", -1, "[0, 10000]"),
    ("width", 0.0, "(0, 4]"),
    ("device", "tpu", "'cpu', 'cuda'"),
    ("augment", "yes", "expected bool"),
    ("batch_size", 12.5, "expected int"),
    ("sigma_w", float("nan"), "finite"),
    ("experiment", "a b", "without spaces"),
])
def test_invalid_field_is_rejected_with_field_value_and_allowed(field, value, allowed):
    with pytest.raises(ConfigError) as e:
        RunConfig(**{field: value})
    msg = str(e.value)
    assert msg.startswith(f"{field}=") and repr(value) in msg and allowed in msg


def test_weight_decay_defaults_follow_the_optimizer_and_is_refused_where_it_does_not_exist():
    assert RunConfig(optimizer="adamw").weight_decay == 1e-4
    assert RunConfig(optimizer="muon").weight_decay == 1e-4
    assert RunConfig(optimizer="adam").weight_decay == 0.0
    with pytest.raises(ConfigError, match="weight_decay=0.001.*use l2"):
        RunConfig(optimizer="sgd_momentum", weight_decay=1e-3)


def test_batch_larger_than_subset_is_rejected():
    with pytest.raises(ConfigError, match="batch_size=256.*train_subset=100"):
        RunConfig(train_subset=100, batch_size=256)


def test_from_dict_names_unknown_fields_and_coerces_strings():
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['sigma'\]"):
        RunConfig.from_dict({"sigma": 1.0})
    c = RunConfig.from_dict({"sigma_w": "0.5", "batch_size": "64", "augment": "true"})
    assert (c.sigma_w, c.batch_size, c.augment) == (0.5, 64, True)
    with pytest.raises(ConfigError, match="batch_size='many' is not a valid int"):
        RunConfig.from_dict({"batch_size": "many"})


def test_run_id_is_stable_and_covers_science_fields_only():
    a = RunConfig(sigma_w=0.5, seed=1)
    assert a.run_id == RunConfig(sigma_w=0.5, seed=1).run_id
    assert len(a.run_id) == 16
    for change in ({"sigma_w": 0.6}, {"seed": 2}, {"optimizer": "adam"}, {"l2": 1e-3}, {"width": 0.5},
                   {"precision": "fp64"}, {"train_subset": 1000}):
        assert a.replace(**change).run_id != a.run_id, change
    # where and under which experiment name a run is computed does not change what it is
    for change in ({"device": "cuda"}, {"experiment": "other"}, {"compile": True}, {"channels_last": True}):
        for p in ("fp32", "tf32", "bf16"):
            assert a.replace(precision=p, **change).run_id == a.replace(precision=p).run_id, (p, change)
    for change in ({"experiment": "other"}, {"compile": True}, {"channels_last": True}):
        assert a.replace(**change).run_id == a.run_id, change
    # precision=auto (the default) is hashed as what it runs: fp32 on CPU, tf32 on CUDA (SPEC Section 3);
    # a TF32 run is another computation than a strict fp32 one
    assert a.precision == "auto" and a.effective_precision == "fp32"
    assert a.run_id == a.replace(precision="fp32").run_id
    on_gpu = a.replace(device="cuda:1")
    assert on_gpu.effective_precision == "tf32" and on_gpu.run_id == a.replace(device="cuda", precision="tf32").run_id
    assert on_gpu.run_id != a.run_id
    # the value pinned here guards against an accidental change of the hash recipe
    assert RunConfig().run_id == "58f67a01cda1cf66"


def test_steps_keep_the_last_partial_batch():
    assert RunConfig(batch_size=128).steps_per_epoch == 313
    assert RunConfig(batch_size=128, epochs=300).total_steps == 93_900
    assert RunConfig(batch_size=16, train_subset=100).steps_per_epoch == 7


def test_packs_group_by_key_and_split_at_max_size():
    runs = [RunConfig(sigma_w=s, seed=k, optimizer=o) for o in ("sgd", "adam") for s in (0.1, 1.0, 2.0)
            for k in (0, 1)]
    packs = group_into_packs(runs, max_pack_size=4)
    assert sorted(len(p) for p in packs) == [2, 2, 4, 4]
    for p in packs:
        check_pack(p)
        assert len({r.optimizer for r in p}) == 1
    assert sum(len(p) for p in packs) == len(runs)
    assert pack_id(packs[0]) == pack_id(list(reversed(packs[0])))


def test_check_pack_rejects_mixed_shapes_and_duplicates():
    with pytest.raises(ConfigError, match=r"agree on \['batch_size'\]"):
        check_pack([RunConfig(), RunConfig(batch_size=64)])
    with pytest.raises(ConfigError, match="same run twice"):
        check_pack([RunConfig(), RunConfig()])
    with pytest.raises(ConfigError, match="max_pack_size=0"):
        group_into_packs([RunConfig()], 0)
