"""initmem.memory: evaluation in chunks that fit the pack's budget, the eval peak against the model
(measured on CPU with the profiler, as bench/bench_memory.py does), CUDA chunk sizes, int32 indexing."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from initmem.config import RunConfig
from initmem.data import synthetic_splits
from initmem.train import PackTrainer, evaluate
from initmem.memory import data_bytes, run_memory_bytes


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("bench_gpu")       # cpu_peak_bytes, resident_bytes


def eval_cfg(arch="resnet9", m=1, n_eval=1000, **kw):
    return [RunConfig(dataset="synthetic", arch=arch, train_subset=16, eval_subset=n_eval, batch_size=16,
                      width=0.25, seed=i, **kw) for i in range(m)]


@pytest.mark.parametrize("arch, m", (("resnet9", 1), ("resnet9", 2), ("resnet56", 2)))
def test_an_epochs_evaluation_fits_the_planned_memory(bench, arch, m):
    # issue 17, finding 2: evaluate ran 1000 images for all M runs at once (~1.3 MB per image per run at
    # width 1), while the planner budgeted one training batch per run: the epoch's evaluation (val and
    # test, PackTrainer.record) must fit in data + M x run_memory_bytes, as a training step does
    runs = eval_cfg(arch, m)
    t = PackTrainer(runs, synthetic_splits(16, 1000))
    zeros = np.zeros(m)
    _, extra = bench.cpu_peak_bytes(lambda: t.record(1, zeros, zeros, time.perf_counter()))
    measured = bench.resident_bytes(t) + extra
    planned = data_bytes(runs[0]) + m * run_memory_bytes(runs[0])
    assert measured <= planned * 1.02, (measured / 1e6, planned / 1e6)


@pytest.mark.parametrize("arch, m", (("resnet9", 1), ("resnet9", 2), ("resnet56", 2)))
def test_eval_peak_matches_the_model_within_10_percent(bench, arch, m):
    from initmem.memory import eval_image_bytes, state_bytes
    runs = eval_cfg(arch, m, n_eval=400)
    t = PackTrainer(runs, synthetic_splits(16, 400))
    assert t.eval_chunk == 200                                  # EVAL_CHUNK_CPU: 2 chunks of 200
    t.evaluate(t.data.x_val, t.data.y_val)
    _, extra = bench.cpu_peak_bytes(lambda: t.evaluate(t.data.x_val, t.data.y_val))
    model = m * t.eval_chunk * eval_image_bytes(runs[0])
    assert extra == pytest.approx(model, rel=0.10)
    resident = bench.resident_bytes(t)
    assert resident == pytest.approx(data_bytes(runs[0]) + m * state_bytes(runs[0]), rel=0.10)


@pytest.mark.parametrize("chunk", (1, 7, 24, 64))
@pytest.mark.parametrize("pad", (False, True))
def test_chunked_evaluation_is_the_unchunked_one(chunk, pad):
    # fp64 on CPU: every image's outputs are those of one forward of all 24 at once; only the order in
    # which the per-chunk sums are added differs
    runs = [RunConfig(dataset="synthetic", train_subset=16, eval_subset=24, batch_size=16, width=1 / 16,
                      precision="fp64", norm=norm, seed=i, sigma_w=1.0 + i) for i, norm in enumerate(("batchnorm",) * 2)]
    t = PackTrainer(runs, synthetic_splits(16, 24))
    t.train_epoch()                                             # moving BN statistics away from their init
    whole = evaluate(t.forward, t.data.x_val, t.data.y_val, t.m, t.autocast, chunk=24)
    parts = evaluate(t.forward, t.data.x_val, t.data.y_val, t.m, t.autocast, chunk=chunk, pad=pad)
    torch.testing.assert_close(parts[0], whole[0], rtol=1e-14, atol=0)
    assert torch.equal(parts[1], whole[1])
    with pytest.raises(ValueError, match="chunk=0 is not allowed"):
        evaluate(t.forward, t.data.x_val, t.data.y_val, t.m, t.autocast, chunk=0)


def test_cuda_chunks_fit_in_a_training_step_and_the_planned_pack():
    from initmem.memory import EVAL_CHUNK_MIN, eval_chunk, eval_image_bytes, state_bytes, train_step_bytes
    from tune_jobs.planner import Device, max_pack_size
    for b in (16, 128, 256):
        cfg = RunConfig(batch_size=b, optimizer="adamw", device="cuda", precision="tf32")
        for gb in (80.0, 141.0):
            m = max_pack_size(cfg, Device("cuda", "gpu", gb))
            chunk = eval_chunk(cfg, m)
            assert EVAL_CHUNK_MIN <= chunk <= 10_000
            assert chunk * eval_image_bytes(cfg) <= train_step_bytes(cfg)      # evaluation adds nothing
            assert m * (state_bytes(cfg) + chunk * eval_image_bytes(cfg)) + data_bytes(cfg) <= 0.75 * gb * 1e9
    # the measured 1.31 MB per image per run at width 1 in fp32 (issue 17)
    assert eval_image_bytes(RunConfig(precision="fp32")) == pytest.approx(1.31e6, rel=0.01)


def test_compiled_cuda_packs_plan_for_the_graph_pools():
    from initmem.memory import eval_chunk, eval_image_bytes, state_bytes, train_step_bytes
    eager = RunConfig(batch_size=128, device="cuda", optimizer="adamw")
    comp = eager.replace(compile=True)
    assert run_memory_bytes(eager) == state_bytes(eager) + train_step_bytes(eager)
    assert run_memory_bytes(comp) > state_bytes(comp) + train_step_bytes(comp) + eval_chunk(comp, 1) * eval_image_bytes(comp)
    assert run_memory_bytes(RunConfig(batch_size=128, compile=True)) == run_memory_bytes(RunConfig(batch_size=128))  # CPU


def test_no_tensor_of_a_planned_pack_reaches_2_to_the_31_elements():
    # issue 17, finding 8: on an H200 at b = 128 the memory bound alone allows 151 runs, whose widest
    # activation (128, 151 x 128, 32, 32) has 2.5e9 elements, past int32 indexing
    from initmem.architectures import cost
    from initmem.memory import eval_chunk, widest_output
    from tune_jobs.planner import Device, max_pack_size
    for b in (16, 128, 512):
        for width in (1.0, 2.0):
            cfg = RunConfig(batch_size=b, width=width, optimizer="sgd", device="cuda", precision="tf32")
            for gb in (80.0, 141.0, 1000.0):
                m = max_pack_size(cfg, Device("cuda", "gpu", gb))
                biggest = max(b, eval_chunk(cfg, m)) * m * widest_output(cfg)
                assert biggest < 2**31 and m * cost(cfg).params < 2**31, (b, width, gb, m)
    h200 = max_pack_size(RunConfig(batch_size=128, device="cuda", optimizer="adamw"), Device("cuda", "H200", 141.0))
    assert h200 == (2**31 - 1) // (128 * 128 * 32 * 32) == 127
