"""python -m tune_jobs study: experiments one after another on one storage, one report (slow: a tiny
study on synthetic data through local Ray; the real mini study is docs/mini_study.md, not run in CI)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from initmem.results import read_epochs, read_runs
from initmem.study import EXPERIMENTS

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
TINY = ["--set", "dataset=synthetic", "--set", "train_subset=64", "--set", "eval_subset=32", "--set", "epochs=2",
        "--set", "width=0.0625"]


def test_a_tiny_study_runs_each_experiment_and_reports_them_together(tmp_path):
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "tune_jobs", "study", "--preset", "smoke", "--experiments", "long_sgd", "best_recipe",
           "--storage", str(tmp_path), *TINY]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("long_sgd", "best_recipe"):
        root = tmp_path / f"{name}_smoke"
        runs = read_runs(str(root))
        assert len(runs) == len(EXPERIMENTS[name].runs("smoke")) and set(runs["status"]) == {"completed"}, name
        assert len(read_epochs(str(root))) == len(runs) * 3                         # epochs 0, 1, 2, once each
        assert f"study       {name}_smoke: {len(runs)}/{len(runs)} runs finished" in proc.stdout
    page = (tmp_path / "report_smoke.html").read_text()
    assert "<section id='long_sgd'>" in page and "<section id='best_recipe'>" in page
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("already finished") >= 2    # a re-run trains nothing
