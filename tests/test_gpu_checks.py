"""bench/gpu_checks.py: the prepared GPU checks, on CPU (pack equivalence, CUDA paths), and their verdicts
on cases built to fail."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from initmem.data import synthetic_splits


@pytest.fixture(scope="module")
def gc(bench_script):
    return bench_script("gpu_checks")


def test_cpu_run_passes_every_check_and_writes_the_json(gc, tmp_path, capsys):
    out = tmp_path / "checks.json"
    assert gc.main(["--cpu", "--steps", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    d = json.loads(out.read_text())
    names = [c["check"] for c in d["checks"]]
    assert names == ["pack equivalence sgd fp32", "pack equivalence sgd_momentum fp32",
                     "pack equivalence adamw fp64", "pack equivalence muon_conv fp64",
                     "path compile vs fp32 eager", "path channels_last vs fp32 eager",
                     "path tf32 vs fp32 eager", "path bf16 vs fp32 eager"]
    for c in d["checks"]:
        assert c["passed"] and f"PASS  {c['check']}" in text
    byname = {c["check"]: c for c in d["checks"]}
    for opt in ("adamw", "muon_conv"):                          # fp64 on CPU: bit-identical to the runs alone
        assert byname[f"pack equivalence {opt} fp64"]["value"] == 0.0
    for opt in ("sgd", "sgd_momentum"):                         # fp32: grouped convs sum in another order
        assert 0 < byname[f"pack equivalence {opt} fp32"]["value"] < 1e-5
    assert byname["path compile vs fp32 eager"]["value"] == 0.0   # aot_eager runs the same kernels
    assert byname["path tf32 vs fp32 eager"]["value"] == 0.0      # no TF32 on a CPU
    assert 0 < byname["path channels_last vs fp32 eager"]["value"] < 1e-3
    assert 0.01 < byname["path bf16 vs fp32 eager"]["value"] < 0.75  # bf16 autocast does change the numbers
    assert "8/8 checks passed" in text


def test_pack_check_fails_when_the_runs_alone_differ(gc):
    # the verdict must be able to fail: runs alone with another lr0 are not the pack's runs
    args = argparse.Namespace(width=1 / 16, batch_size=16, steps=2)
    data = synthetic_splits(32, 16)
    bad = gc.pack_equivalence("sgd", "fp32", 1e-5, args, "cpu", data, alone_kw={"lr0": 0.07})
    assert not bad["passed"] and bad["value"] > 1e-5
    bad = gc.pack_equivalence("adamw", "fp64", 1e-9, args, "cpu", data, alone_kw={"l2": 2e-3})
    assert not bad["passed"]


def test_max_rel_is_relative_to_the_reference_per_tensor(gc):
    ref = [torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([100.0], dtype=torch.float64)]
    assert gc.max_rel(ref, ref) == 0.0
    assert gc.max_rel([torch.tensor([1.0, -2.002], dtype=torch.float64), torch.tensor([100.0], dtype=torch.float64)], ref) == pytest.approx(1e-3)
    assert gc.max_rel([torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([100.5], dtype=torch.float64)], ref) == pytest.approx(5e-3)


def test_training_diff_is_the_share_of_the_training_that_differs(gc):
    init = [torch.zeros(3, dtype=torch.float64)]
    ref = [torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)]           # trained 5 away from init
    assert gc.training_diff(ref, ref, init) == 0.0
    assert gc.training_diff([torch.tensor([3.0, 4.0, 0.5], dtype=torch.float64)], ref, init) == pytest.approx(0.1)
    assert gc.training_diff(ref, init, init) == float("inf")                 # a reference that did not train


def test_without_a_gpu_the_gpu_run_says_so(gc, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert gc.main([]) == 2
    assert "--cpu" in capsys.readouterr().err
