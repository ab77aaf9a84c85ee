"""RunConfig: validation names field, value and what is allowed; run_id and pack key."""

import pytest

from initmem.config import (FIELD_DOCS, ConfigError, RunConfig, check_pack, group_into_packs, pack_id)


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
    ("train_subset", 50_000, "at most the dataset's train split (0 = all): 40000 for cifar10"),
    ("eval_subset", -1, "an integer >= 0"),
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


# --- the field definitions: one place for help, errors and docs -----------------------------------

BAD = {"experiment": "a/b", "arch": "vgg", "norm": "groupnorm", "augment": "yes", "optimizer": "rmsprop",
       "batch_size": 0, "epochs": 0, "schedule": "step", "lr0": -1.0, "alpha": 2.0, "sigma_w": 0.0, "seed": 2**31,
       "l2": -0.5, "weight_decay": -2.0, "momentum": 1.0, "patience": -1, "precision": "fp16", "device": "gpu",
       "channels_last": 1, "compile": "no", "dataset": "mnist", "train_subset": 40_001, "eval_subset": 10_001,
       "width": 5.0, "init": "xavier", "sigma_first": 0.0, "sigma_last": -2.0, "bias_std": -0.1,
       "width_scaling": "ntk"}


def test_every_field_is_defined_with_meaning_and_allowed_values():
    import dataclasses
    names = [f.name for f in dataclasses.fields(RunConfig)]
    assert list(FIELD_DOCS) == names and set(BAD) == set(names)
    for f in dataclasses.fields(RunConfig):
        d = FIELD_DOCS[f.name]
        assert d.meaning and d.allowed and d.default == f.default and d.type == f.type, f.name
        if f.metadata["choices"] is not None:
            assert d.allowed == f"one of {list(f.metadata['choices'])}"
    assert FIELD_DOCS["batch_size"].unit == "images" and FIELD_DOCS["lr0"].unit == "per update"
    assert FIELD_DOCS["epochs"].describe() == "passes over the train split [epochs]; allowed: an integer >= 1; default: 300"
    assert [d.name for d in FIELD_DOCS.values() if d.per_run] == ["lr0", "sigma_w", "seed", "l2", "weight_decay", "init",
                                                                 "sigma_first", "sigma_last", "bias_std", "width_scaling"]


@pytest.mark.parametrize("field", sorted(BAD))
def test_the_error_states_the_documented_allowed_values(field):
    with pytest.raises(ConfigError) as e:
        RunConfig(**{field: BAD[field]})
    msg = str(e.value)
    # the message is built from the definition: field, value, then exactly the allowed text of --help
    assert msg.startswith(f"{field}={BAD[field]!r} is not allowed: {FIELD_DOCS[field].allowed}"), msg


def test_the_boundary_values_of_each_check_are_allowed():
    good = {"experiment": "x", "batch_size": 1, "epochs": 1, "lr0": 1e-9, "alpha": 0.0, "sigma_w": 1e-3,
            "seed": 2**31 - 1, "l2": 0.0, "weight_decay": 0.0, "momentum": 0.0, "patience": 0, "device": "cuda:3",
            "train_subset": 40_000, "eval_subset": 10_000, "width": 4.0}
    for name, value in good.items():
        assert getattr(RunConfig(**{name: value}), name) == value, name


def test_docs_results_md_holds_the_generated_field_table():
    from pathlib import Path

    import pyarrow as pa

    from initmem.config import PARQUET_TYPES, fields_markdown
    from initmem.results import CONFIG_FIELDS
    text = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    begin, end = text.index("<!-- fields:begin"), text.index("<!-- fields:end -->")
    table = text[text.index("-->\n", begin) + 4:end]
    assert table == fields_markdown(), ("docs/results.md disagrees with RunConfig's definitions: paste the output "
                                        "of `python -m initmem fields --markdown` between the fields markers")
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert [r[0].lstrip("| ") for r in rows] == [name for name, _ in CONFIG_FIELDS]
    assert all(pa.type_for_alias(r[1]) == typ for r, (_, typ) in zip(rows, CONFIG_FIELDS))  # the Parquet types
    assert all(PARQUET_TYPES[FIELD_DOCS[name].type] == r[1] for r, (name, _) in zip(rows, CONFIG_FIELDS))
