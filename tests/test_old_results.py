"""Results written by the code before the study's vocabulary moved into initmem (commit c47080c, the last
landing before it) still load, report and resume with this code: same run_ids, same columns, and a pack
interrupted by the old code finishes under the new one exactly as an uninterrupted new run does.

    python -m pytest tests/test_old_results.py -q      # needs the checkout's git history (skipped without)
"""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
OLD = "c47080c"
RUNS = ("[RunConfig(dataset='synthetic', width=0.0625, train_subset=64, eval_subset=32, batch_size=16, epochs=3,"
        " precision='fp64', optimizer='adam', sigma_w=s, seed=i) for i, s in enumerate((0.5, 2.0))]")


@pytest.fixture(scope="module")
def old_code(tmp_path_factory):
    if not (REPO / ".git").exists():
        pytest.skip("needs the checkout's git history")
    folder = tmp_path_factory.mktemp("old")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {OLD} is not in this checkout's history")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def _old(code: str, folder: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(folder)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_old_results_load_report_and_resume(old_code, tmp_path):
    from analysis.load import load
    from analysis.report import build_report
    from initmem.config import RunConfig
    from initmem.data import load_splits
    from initmem.results import read_epochs, read_runs
    from initmem.train import train_pack
    done, half = tmp_path / "done", tmp_path / "half"
    _old("from initmem.config import RunConfig\nfrom initmem.data import load_splits\nfrom initmem.train import train_pack\n"
         f"runs = {RUNS}\ndata = load_splits('synthetic', train_subset=64, eval_subset=32)\n"
         f"train_pack(runs, data, results={str(done)!r}, log=None)\n"
         f"train_pack(runs, data, results={str(half)!r}, checkpoint_dir={str(half / 'ckpt')!r}, stop_after_epoch=1, "
         "log=None)\n", old_code)
    runs = eval(RUNS, {"RunConfig": RunConfig})
    old_rows = read_runs(str(done))
    assert sorted(old_rows["run_id"]) == sorted(r.run_id for r in runs)           # the same identities
    assert old_rows["code_version"].isna().all() and (old_rows["init"] == "paper").all()   # new columns: unknown / default
    # load and report
    r, e = load(str(done))
    assert len(r) == 2 and len(e) == 8
    page = build_report(r, e, n_boot=10, linear_model=False)
    assert "Experiment adhoc" in page
    # a finished old pack is not retrained; an interrupted one resumes to what the new code computes alone
    data = load_splits("synthetic", train_subset=64, eval_subset=32)
    assert train_pack(runs, data, results=str(done), log=None)[0]["updated_at"] == old_rows["updated_at"].iloc[0]
    resumed = train_pack(runs, data, results=str(half), checkpoint_dir=half / "ckpt", log=None)
    fresh = train_pack(runs, data, results=str(tmp_path / "fresh"), log=None)
    assert [x["status"] for x in resumed] == ["completed", "completed"]
    cols = ["run_id", "epoch", "train_loss", "val_loss", "val_acc", "test_acc", "w_norm"]
    a = read_epochs(str(half))[cols].sort_values(["run_id", "epoch"]).reset_index(drop=True)
    b = read_epochs(str(tmp_path / "fresh"))[cols].sort_values(["run_id", "epoch"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)                                             # exactly, every epoch once
    assert [x["test_acc"] for x in resumed] == [x["test_acc"] for x in fresh]
