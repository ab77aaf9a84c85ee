"""python -m initmem: flags to a validated pack; errors before compute; real data end to end (slow)."""

import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from initmem.cli import build_runs, main


def test_per_run_flags_form_the_product():
    runs = build_runs({"optimizer": "adam"}, {"sigma_w": [0.5, 1.0], "seed": [0, 1, 2]})
    assert len(runs) == 6 and {r.optimizer for r in runs} == {"adam"}
    assert {(r.sigma_w, r.seed) for r in runs} == {(s, k) for s in (0.5, 1.0) for k in (0, 1, 2)}


@pytest.mark.parametrize("argv, message", [
    (["--sigma-w", "0"], "sigma_w=0.0 is not allowed"),
    (["--optimizer", "rmsprop"], "optimizer='rmsprop' is not allowed"),
    (["--batch-size", "0"], "batch_size=0 is not allowed"),
    (["--arch", "vgg"], "arch='vgg' is not allowed"),
    (["--data", "/nonexistent/file.npz"], "does not exist"),
])
def test_bad_input_fails_before_training(argv, message, capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "epochs").exists()


def test_config_file_and_flags(tmp_path, capsys):
    cfg = tmp_path / "pack.yaml"
    cfg.write_text("dataset: synthetic\ntrain_subset: 32\neval_subset: 16\nbatch_size: 16\nwidth: 0.0625\n"
                   "epochs: 1\nsigma_w: [0.5, 2.0]\n")
    assert main(["train", "--config", str(cfg), "--optimizer", "adam", "--out", str(tmp_path / "r")]) == 0
    assert main(["show", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.count("completed") >= 4  # train summary + show, two runs each
    bad = tmp_path / "bad.yaml"
    bad.write_text("sigma: 1.0\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "r2")]) == 2


@pytest.mark.slow
def test_real_data_cli_within_three_minutes(shared, tmp_path):
    data = shared / "data" / "cifar10-jpeg75.npz"
    if not data.exists():
        pytest.skip(f"{data} not present")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "initmem", "train", "--data", str(data), "--arch", "resnet9",
                           "--width", "0.125", "--train-subset", "2000", "--eval-subset", "2000",
                           "--sigma-w", "0.5", "2.0", "--optimizer", "sgd", "--epochs", "2",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert "epoch 2/2" in proc.stdout
    assert elapsed <= 180, f"took {elapsed:.0f}s"
    runs = pd.read_parquet(tmp_path / "r" / "runs")
    epochs = pq.read_table(tmp_path / "r" / "epochs").to_pandas()
    assert len(runs) == 2 and set(runs.status) == {"completed"}
    assert len(epochs) == 2 * 3 and epochs.groupby("run_id").epoch.apply(sorted).map(list).tolist() == [[0, 1, 2]] * 2
