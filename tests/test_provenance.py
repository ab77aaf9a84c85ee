"""initmem.provenance: every runs row says which code and data made it; a re-run with other code warns,
and --require-same-code refuses (slow: a real sweep in a git clone whose code then changes)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from initmem.provenance import code_version, data_id, differences

REPO = Path(__file__).resolve().parents[1]


def test_data_id_is_the_content():
    import numpy as np
    from initmem.data import load_splits
    d = Path(os.environ.get("TMPDIR", "/tmp")) / f"initmem-prov-{os.getpid()}"
    d.mkdir(exist_ok=True)
    try:
        x = np.zeros((20, 32, 32, 3), np.uint8)
        y = np.arange(20) % 10
        np.savez(d / "a.npz", x_train=x, y_train=y, x_test=x, y_test=y)
        first = data_id(d / "a.npz")
        assert first.startswith("sha256:") and first == data_id(d / "a.npz") == load_splits(path=d / "a.npz").data_id
        x[0, 0, 0, 0] = 1                                   # one pixel changes the id
        np.savez(d / "a.npz", x_train=x, y_train=y, x_test=x, y_test=y)
        assert data_id(d / "a.npz") != first
        folder = data_id(d)                                 # a folder: every file in it, names and bytes
        (d / "b.bin").write_bytes(b"more")
        assert data_id(d) != folder
    finally:
        shutil.rmtree(d)
    assert data_id(None) == "synthetic:0" == load_splits("synthetic", train_subset=16, eval_subset=8).data_id


def test_differences_name_both_sides():
    rows = [{"code_version": "aaa", "code_dirty": False, "data_id": "sha256:1"}] * 3
    assert differences(rows, "aaa", False, "sha256:1") == []
    assert differences(rows, "bbb", False, "sha256:1") == ["code: the results were written by aaa; this run is bbb"]
    assert "with uncommitted changes" in differences(rows, "aaa", True, "sha256:1")[0]
    assert differences(rows, "aaa", False, "sha256:2") == ["data: the results read sha256:1; this run reads sha256:2"]
    old = [{"code_version": None, "code_dirty": None, "data_id": None}]   # written before the columns existed
    assert differences(old, "bbb", True, "x") == []


def test_this_checkout_knows_its_commit():
    version, dirty = code_version()
    if not (REPO / ".git").exists():
        assert version.startswith("initmem ") and dirty is None
        return
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert version == head and isinstance(dirty, bool)


GRID = ("name: prov\nfixed: {dataset: synthetic, width: 0.0625, train_subset: 32, eval_subset: 16, batch_size: 16,"
        " epochs: 1}\naxes: {sigma_w: [0.5, 2.0]}\n")


@pytest.mark.slow
def test_a_rerun_with_changed_code_warns_and_require_same_code_refuses(tmp_path):
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs the checkout's git history")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (tmp_path / "prov.yaml").write_text(GRID)
    env = {**os.environ, "PYTHONPATH": str(clone), "RAY_AUTH_MODE": "token"}
    cmd = [sys.executable, "-m", "tune_jobs", str(tmp_path / "prov.yaml"), "--preset", "full",
           "--storage", str(tmp_path / "store"), "--no-report"]
    first = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    import pandas as pd
    runs = pd.read_parquet(tmp_path / "store" / "prov" / "runs")
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    assert set(runs["code_version"]) == {commit} and set(runs["code_dirty"]) == {False}
    assert set(runs["data_id"]) == {"synthetic:0"}
    same = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert same.returncode == 0 and "warning" not in same.stdout, same.stdout
    # the code changes and is committed: the re-run names both versions, --require-same-code refuses
    with open(clone / "initmem" / "__init__.py", "a") as f:
        f.write("# a change\n")
    subprocess.run(["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "change"],
                   check=True)
    new = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    warned = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert warned.returncode == 0
    assert f"warning     code: the results were written by {commit}; this run is {new}" in warned.stdout, warned.stdout
    refused = subprocess.run(cmd + ["--require-same-code"], cwd=clone, env=env, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 2 and "--require-same-code" in refused.stderr and commit in refused.stderr
    assert new in refused.stderr, refused.stderr
