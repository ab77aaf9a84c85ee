"""tune_jobs on real local Ray (slow): a killed worker, a killed driver, `ray job submit` end to end.

    python -m pytest -m slow tests/test_tune_ray.py        # ~2 min on 2 CPU cores

Every test trains with the real initmem.train.train_pack on dataset="synthetic" (no data files).
Ray runs on loopback only; processes a test starts are ended by their ids / process group.
"""

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from initmem.results import read_epochs, read_runs
from loopback_cluster import free_ports
from initmem.study import EXPERIMENTS
from tune_jobs.grids import experiment_from_spec
from tune_jobs.runner import SweepOptions, run_sweep
from tune_jobs.standin import CrashOnce

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
TINY = {"dataset": "synthetic", "width": 0.125, "train_subset": 128, "eval_subset": 64, "batch_size": 32}
VOLATILE_RUN_COLUMNS = ["wall_time_s", "updated_at"]


def _sorted(df: pd.DataFrame, keys) -> pd.DataFrame:
    return df.sort_values(keys).reset_index(drop=True)


def _end_group(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """End a process this test started in its own session, then anything left in its group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # Ray helpers the process left behind (same group)
    except ProcessLookupError:
        pass


def test_worker_killed_after_first_checkpoint_resumes_exactly(tmp_path):
    from initmem.train import train_pack
    exp = experiment_from_spec({"name": "worker_failure", "fixed": {**TINY, "epochs": 3, "optimizer": "adam"},
                                "axes": {"sigma_w": [0.5, 2.0]}})
    marker = tmp_path / "crashed.txt"
    crashed, clean = [], []
    common = dict(checkpoint_every=1, max_failures=2, num_cpus=2, dry_run=False)
    res = run_sweep(exp, "full", SweepOptions(storage=str(tmp_path / "crash"), **common),
                    train_fn=CrashOnce(train_pack, marker, after_epoch=1), out=crashed.append)
    ref = run_sweep(exp, "full", SweepOptions(storage=str(tmp_path / "clean"), **common), out=clean.append)
    assert marker.exists(), "the trial process was not killed"
    assert any(" retry " in line for line in crashed), "\n".join(crashed)
    assert res.ok and ref.ok and res.finished_runs == 2

    a = read_epochs(res.root)  # raises on a duplicated (run_id, epoch)
    b = read_epochs(ref.root)
    assert len(a) == 2 * 4 and not a.duplicated(["run_id", "epoch"]).any()
    pd.testing.assert_frame_equal(_sorted(a, ["run_id", "epoch"]).drop(columns="wall_time"),
                                  _sorted(b, ["run_id", "epoch"]).drop(columns="wall_time"))
    ra, rb = read_runs(res.root), read_runs(ref.root)
    pd.testing.assert_frame_equal(_sorted(ra, "run_id").drop(columns=VOLATILE_RUN_COLUMNS),
                                  _sorted(rb, "run_id").drop(columns=VOLATILE_RUN_COLUMNS))
    # resumed from the checkpoint of epoch 1, not from scratch: the first attempt's epochs 0-1 file survived
    crashed_pack = marker.read_text().split()[0]  # the pack whose process died (CPU plans may make 2 packs)
    first = Path(res.root, "epochs", crashed_pack, "e00000-00001.parquet")
    assert first.stat().st_mtime <= marker.stat().st_mtime


def _pack_states(results: Path) -> dict[str, str]:
    """pack file -> status of its runs (one status per pack file, or 'mixed')."""
    out = {}
    for f in (results / "runs").glob("*.parquet"):
        try:
            statuses = set(pq.read_table(f, columns=["status"]).column("status").to_pylist())
        except Exception:  # noqa: BLE001 - a file being replaced right now
            continue
        out[f.stem] = statuses.pop() if len(statuses) == 1 else "mixed"
    return out


def _files(results: Path, pack: str) -> dict[str, int]:
    files = [results / "runs" / f"{pack}.parquet", *sorted((results / "epochs" / pack).glob("*.parquet"))]
    return {str(f): f.stat().st_mtime_ns for f in files}


def test_driver_killed_mid_experiment_rerun_completes(tmp_path):
    grid = tmp_path / "driver_failure.yaml"
    grid.write_text(
        "name: driver_failure\n"
        f"fixed: {{dataset: synthetic, width: 0.125, train_subset: 128, eval_subset: 64, batch_size: 32, epochs: 4}}\n"
        "axes: {optimizer: [sgd, adam, sgd_momentum, adamw, muon], sigma_w: [0.5, 2.0]}\n")
    storage = tmp_path / "store"
    cmd = [sys.executable, "-m", "tune_jobs", str(grid), "--preset", "full", "--storage", str(storage),
           "--max-concurrent", "1", "--checkpoint-every", "1", "--num-cpus", "2"]
    results = storage / "driver_failure"
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and first.poll() is None:
            states = _pack_states(results) if results.exists() else {}
            if sum(s == "completed" for s in states.values()) >= 2 and "running" in states.values():
                break
            time.sleep(0.1)
        assert first.poll() is None, "the driver ended before it could be killed: " + (tmp_path / "first.log").read_text()
        finished = [p for p, s in _pack_states(results).items() if s == "completed"]
        before = {p: _files(results, p) for p in finished}
        os.kill(first.pid, signal.SIGKILL)  # the driver dies; its Ray (owned by it) goes with it
        first.wait(30)
    finally:
        time.sleep(3)
        _end_group(first)
        log.close()
    assert len(finished) >= 2

    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400, start_new_session=True)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert "resuming the Tune experiment" in second.stdout
    assert "finished    10/10 runs" in second.stdout

    runs = read_runs(str(results))
    assert len(runs) == 10 and set(runs["status"]) == {"completed"} and runs["run_id"].is_unique
    epochs = read_epochs(str(results))  # raises on a duplicate
    assert len(epochs) == 10 * 5
    assert all(sorted(g) == list(range(5)) for _, g in epochs.groupby("run_id")["epoch"])
    for p in finished:  # finished packs were not trained again: their files are untouched
        assert _files(results, p) == before[p], p


def test_ray_job_submit_smoke_main_grid_on_a_loopback_head(tmp_path):
    gcs, dash, client, agent, metrics, renv = free_ports(6)
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # single-node Ray: loopback addresses only
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    temp_dir = Path("/tmp") / f"rt{secrets.token_hex(3)}"  # short: Ray's unix socket paths are length-limited
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--ray-client-server-port", str(client),
         "--dashboard-agent-listen-port", str(agent), "--metrics-export-port", str(metrics),
         "--runtime-env-agent-port", str(renv), "--num-cpus", "2", "--include-dashboard", "true",
         "--temp-dir", str(temp_dir), "--disable-usage-stats"],
        env=env, stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    storage = tmp_path / "store"
    try:
        deadline = time.time() + 120
        while True:
            probe = subprocess.run(["ray", "job", "list", "--address", address], env=env, capture_output=True,
                                   text=True, timeout=60)
            if probe.returncode == 0:
                break
            assert head.poll() is None and time.time() < deadline, (tmp_path / "head.log").read_text()[-3000:]
            time.sleep(2)
        t0 = time.time()
        # --no-wait, then poll the status: Ray's log tail can drop while the job runs on (WebSocket close
        # 1006, ray-project/ray#57002; seen here once in CI), and the job's fate is its status, not the tail
        sub = subprocess.run(
            ["ray", "job", "submit", "--address", address, "--working-dir", str(REPO), "--no-wait",
             "--submission-id", "initmem-smoke", "--",
             "python", "-m", "tune_jobs.main_grid", "--preset", "smoke", "--storage", str(storage),
             "--set", "dataset=synthetic", "--set", "train_subset=256", "--set", "eval_subset=64"],
            env=env, capture_output=True, text=True, timeout=120)
        assert sub.returncode == 0, sub.stdout[-3000:] + sub.stderr[-3000:]
        while True:
            status = subprocess.run(["ray", "job", "status", "--address", address, "initmem-smoke"], env=env,
                                    capture_output=True, text=True, timeout=60).stdout
            fate = re.search(r"Job 'initmem-smoke' (succeeded|failed|stopped)", status, re.IGNORECASE)
            if fate:
                break
            assert time.time() - t0 < 500, status[-2000:]
            time.sleep(3)
        wall = time.time() - t0
        logs = subprocess.run(["ray", "job", "logs", "--address", address, "initmem-smoke"], env=env,
                              capture_output=True, text=True, timeout=60).stdout
        assert fate.group(1).lower() == "succeeded", status[-2000:] + logs[-5000:]
        assert "connected to" in logs and "finished    20/20 runs" in logs, logs[-5000:]
        assert "python -m analysis.report" in logs
        print(f"ray job submit: smoke main grid (synthetic) in {wall:.0f}s")
    finally:
        _end_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
    results = storage / "main_grid_smoke"
    runs = read_runs(str(results))
    assert len(runs) == 20 and set(runs["status"]) == {"completed"}
    assert set(runs["experiment"]) == {"main_grid"} and set(runs["dataset"]) == {"synthetic"}
    epochs = read_epochs(str(results))
    smoke = EXPERIMENTS["main_grid"].runs("smoke")  # epochs 0..epochs of each run, once (b=16: 2, b=32: 4)
    assert set(runs["train_subset"]) == {256} and set(runs["eval_subset"]) == {64}
    assert len(epochs) == sum(r.epochs + 1 for r in smoke) == 10 * 3 + 10 * 5


def test_a_pack_out_of_memory_is_re_planned_until_it_fits(tmp_path):
    # issue 17, finding 2: a CUDA out-of-memory error (injected: the "device" holds one run, and the error
    # comes at the checkpoint of epoch 1, after its epochs file) ends the trial with a clear message; the
    # driver splits the pack in halves (4 -> 2 + 2 -> 1 + 1 + 1 + 1), records them in plan.json, moves the
    # partial files aside and trains the halves: complete results, exactly once, equal to the runs alone
    import json
    from initmem.data import load_splits
    from initmem.results import ResultsWriter
    from initmem.train import train_pack
    from tune_jobs.standin import OutOfMemoryAbove
    exp = experiment_from_spec({"name": "oom", "fixed": {**TINY, "epochs": 3, "optimizer": "adam"},
                                "axes": {"sigma_w": [0.5, 1.0, 1.5, 2.0]}})
    lines = []
    opts = SweepOptions(storage=str(tmp_path / "store"), max_pack_size=4, checkpoint_every=1, max_failures=2,
                        num_cpus=2, max_concurrent=1, dry_run=False)   # one slot: one pack of 4 to start with
    res = run_sweep(exp, "full", opts, train_fn=OutOfMemoryAbove(train_pack, max_runs=1, at_epoch=1),
                    out=lines.append)
    text = "\n".join(lines)
    assert res.ok and res.finished_runs == 4, text
    assert text.count("memory      pack ") == 3, text
    assert "ran out of memory on cpu: CUDA out of memory" in text
    assert "re-plans it into 2 packs of 2 and 2 runs" in text and "re-plans it into 2 packs of 1 and 1 runs" in text
    assert " retry " not in text                                # an out-of-memory error is not retried as is
    exp_dir = tmp_path / "store" / "oom"
    stored = json.loads((exp_dir / "plan.json").read_text())
    assert [len(p) for p in stored["packs"]] == [1, 1, 1, 1] and len(stored["replaced"]) == 3
    assert len(list((exp_dir / "replanned").iterdir())) == 3     # the 4-pack's and the two 2-packs' files
    # exactly once, and what each run computes alone
    a = read_epochs(res.root)
    assert len(a) == 4 * 4 and not a.duplicated(["run_id", "epoch"]).any()
    data = load_splits("synthetic", train_subset=TINY["train_subset"], eval_subset=TINY["eval_subset"])
    alone = tmp_path / "alone"
    for r in exp.runs("full"):
        train_pack([r], data, results=str(alone), log=None)
    b = read_epochs(str(alone))
    pd.testing.assert_frame_equal(_sorted(a, ["run_id", "epoch"]).drop(columns="wall_time"),
                                  _sorted(b, ["run_id", "epoch"]).drop(columns="wall_time"))
    runs = read_runs(res.root)
    assert len(runs) == 4 and set(runs["status"]) == {"completed"} and runs["run_id"].is_unique
    assert all(ResultsWriter(res.root).finished_rows(pid) for pid in res.plan.pack_ids)
    # a re-run keeps the new packs and trains nothing
    again = run_sweep(exp, "full", opts, out=lines.append)
    assert again.ok and "nothing to train" in "\n".join(lines[-6:])


def test_a_single_run_that_does_not_fit_is_an_error_not_a_loop(tmp_path):
    from tune_jobs.standin import OutOfMemoryAbove, instant_train_pack
    exp = experiment_from_spec({"name": "oom1", "fixed": {**TINY, "epochs": 2},
                                "axes": {"sigma_w": [0.5, 2.0]}})
    lines = []
    res = run_sweep(exp, "full", SweepOptions(storage=str(tmp_path), max_pack_size=2, num_cpus=2, max_concurrent=1,
                                              dry_run=False),
                    train_fn=OutOfMemoryAbove(instant_train_pack, max_runs=0), out=lines.append)
    assert not res.ok and res.finished_runs == 0 and len(res.errors) == 2, "\n".join(lines)
    assert all("a single run does not fit" in e for e in res.errors)
    assert sum(line.startswith("memory ") for line in lines) == 3   # the pack of 2, then each run once
