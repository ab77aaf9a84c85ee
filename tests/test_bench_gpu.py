"""bench/bench_gpu.py --tiny: the GPU benchmark's code on CPU (CI runs it); its memory measurement."""

from __future__ import annotations

import json
import math

import pytest
import torch

from initmem.config import RunConfig
from initmem.memory import data_bytes, run_memory_bytes
from tune_jobs.planner import forward_flops


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("bench_gpu")


def test_cpu_peak_bytes_sees_allocations_and_frees(bench):
    def pattern():
        a = torch.ones(1000, 1000)            # 4 MB
        b = torch.ones(500, 1000)             # + 2 MB
        del a                                 # - 4 MB
        c = torch.ones(2000, 1000)            # + 8 MB -> peak 10 MB
        return b, c
    _, peak = bench.cpu_peak_bytes(pattern)
    assert peak == pytest.approx(10e6, rel=0.01)


def test_tiny_runs_the_benchmark_on_cpu_and_writes_the_table(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--tiny", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "step ms" in text and "MFU" in text and f"wrote {out}" in text
    d = json.loads(out.read_text())
    assert d["device"] == "cpu" and not d["skipped"]
    rows = d["rows"]
    assert [(r["pack"], r["precision"], r["mode"]) for r in rows] == \
        [(1, "fp32", "eager"), (2, "fp32", "eager"), (2, "bf16", "eager"), (2, "fp32", "compiled")]
    fwd = forward_flops("resnet9", 1 / 16)
    for r in rows:
        assert r["status"] == "ok"
        sec = r["step_ms"] / 1e3
        assert sec > 0 and r["images_per_s"] == pytest.approx(16 * r["pack"] / sec)
        assert r["tflops"] == pytest.approx(3 * fwd * 16 * r["pack"] / sec / 1e12)   # 3x forward per image
        cfg = RunConfig(dataset="synthetic", train_subset=32, eval_subset=200, batch_size=16, width=1 / 16,
                        optimizer="adamw", precision=r["precision"])   # eval: one CPU chunk (EVAL_CHUNK_CPU)
        assert r["predicted_gb"] == pytest.approx((data_bytes(cfg) + r["pack"] * run_memory_bytes(cfg)) / 1e9)
        if r["mode"] == "eager":   # measured: within a factor 2 of the model at this toy size
            assert 0.5 < r["memory_ratio"] < 2.0 and math.isfinite(r["peak_gb"])
    # two runs hold about twice the state of one (the data is shared)
    assert rows[1]["peak_gb"] > rows[0]["peak_gb"] * 1.3


def test_gpu_cases_plan_with_the_detected_gpu_memory(bench, monkeypatch):
    # issue 17, finding 8: the benchmark planned its largest pack with detect_device("cuda"), i.e. an assumed
    # 80 GB, on every GPU (an H200 has 141)
    import argparse
    import types
    from tune_jobs.planner import Device, max_pack_size
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda *_: types.SimpleNamespace(total_memory=141e9, name="fake H200"))
    args = argparse.Namespace(tiny=False, optimizer="adamw")
    tops = {b: max(m for bb, m, _, _ in bench.cases(args, "cuda") if bb == b) for b in (16, 128)}
    h200 = Device("cuda", "H200", 141.0)
    for b, top in tops.items():
        assert top == max_pack_size(RunConfig(batch_size=b, optimizer="adamw", device="cuda"), h200) > 32
