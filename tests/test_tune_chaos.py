"""Node-loss chaos (slow, runs in CI): a sweep on a loopback multi-node cluster whose worker nodes
are killed without grace every ~15 s and replaced, with one driver SIGKILL and a re-run of the
same command, ends with exactly the results of an uninterrupted training of the same packs, bit for bit.

    python -m pytest -m slow tests/test_tune_chaos.py -s     # ~3 min on 2 CPU cores; prints the figures

Cluster: a head with 0 CPUs (the drivers) and 2 worker nodes of 1 CPU (tests/loopback_cluster.py).
Sweep: 20 runs in 10 packs of 2 (5 optimizers x 2 batch sizes x 2 sigma_w), 6 epochs each, real
initmem.train.train_pack on dataset=synthetic at width 1/8 (256 train images), a checkpoint every
epoch: long enough (~1 min on 2 quiet cores without chaos; 12 epochs took ~1.6 min) for >= 4 kills
at one per 10 s. The chaos sweep: from the start
of the first driver a thread kills a random worker node every CHAOS_PERIOD_S (SIGKILL to the
node's raylet, object store and workers at once) and starts a replacement; once 3 packs are
finished and another is running, the driver gets SIGKILL; `python -m tune_jobs status` must then
report from storage what the Parquet holds; the same command runs again to the end, nodes still
dying under it. The reference: each pack of the sweep's plan.json trained to the end in this
process with train_pack, one thread as in a 1-CPU trial, no Ray (what the sweep computes when nothing
fails; it was a second, uninterrupted sweep on the cluster, ~60 s more). Pass: every run finished,
each (run_id, epoch) once, every value exactly equal to the reference's (wall-time columns
excluded), >= MIN_KILLS nodes killed.
"""

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from initmem.data import load_splits
from initmem.layout import plan_packs, read_plan
from initmem.results import read_epochs, read_runs
from initmem.train import train_pack
from loopback_cluster import REPO, LoopbackCluster, end_group, final_packs

pytestmark = pytest.mark.slow
CHAOS_PERIOD_S = 10.0   # seconds between node kills
MIN_KILLS = 4
N_RUNS, EPOCHS = 20, 6
GRID = ("name: chaos\n"
        f"fixed: {{dataset: synthetic, width: 0.125, train_subset: 256, eval_subset: 32, epochs: {EPOCHS}}}\n"
        "axes: {optimizer: [sgd, sgd_momentum, adam, adamw, muon], batch_size: [32, 64], sigma_w: [0.5, 2.0]}\n")
VOLATILE_RUN_COLUMNS = ["wall_time_s", "updated_at"]


def _cmd(grid: Path, storage: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "tune_jobs", str(grid), "--preset", "full", "--storage", str(storage),
            "--address", address, "--checkpoint-every", "1", "--max-pack-size", "2", "--max-failures", "50",
            "--no-report"]


def _running_packs(results: Path) -> int:
    try:
        runs = read_runs(str(results), columns=["pack_id", "status"])
    except Exception:  # noqa: BLE001
        return 0
    return int(runs.loc[runs["status"] == "running", "pack_id"].nunique())


class Chaos(threading.Thread):
    """Kill a random worker node every CHAOS_PERIOD_S and start a replacement, until stopped."""

    def __init__(self, cluster: LoopbackCluster, seed: int = 11):
        super().__init__(daemon=True)
        self.cluster, self.rng, self.stop = cluster, random.Random(seed), threading.Event()
        self.kills: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        t0 = time.time()
        while not self.stop.wait(max(0.0, t0 + CHAOS_PERIOD_S * (len(self.kills) + 1) - time.time())):
            if not self.cluster.workers:
                continue
            self.cluster.kill_worker(self.rng.choice(self.cluster.workers))
            self.kills.append(time.time())
            try:
                self.cluster.add_worker()
            except RuntimeError as e:  # the next period tries again
                self.errors.append(str(e)[-500:])


def _sorted(df: pd.DataFrame, keys) -> pd.DataFrame:
    return df.sort_values(keys).reset_index(drop=True)


def _uninterrupted(results: Path, ref: Path, tmp: Path) -> None:
    """Train every pack of the sweep's stored plan to the end in this process, checkpointing as the
    trials do, into the results root `ref`."""
    packs = plan_packs(read_plan(str(results)))
    cfg = packs[0][0]
    data = load_splits(cfg.dataset, train_subset=cfg.train_subset, eval_subset=cfg.eval_subset)
    for i, pack in enumerate(packs):
        train_pack(pack, data, results=str(ref), checkpoint_dir=tmp / f"ckpt{i}", checkpoint_every=1, log=None)


def test_node_loss_and_driver_kill_leave_exactly_the_uninterrupted_results(tmp_path):
    grid = tmp_path / "chaos.yaml"
    grid.write_text(GRID)
    (tmp_path / "cluster").mkdir()
    with LoopbackCluster(tmp_path / "cluster", workers=2, head_cpus=0) as cluster:
        env = cluster.driver_env()
        storage = tmp_path / "chaos"
        results = storage / "chaos"
        chaos = Chaos(cluster)
        log1 = open(tmp_path / "driver1.log", "w")
        t0 = time.time()
        first = subprocess.Popen(_cmd(grid, storage, cluster.address), cwd=REPO, env=env, stdout=log1,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        chaos.start()
        try:
            deadline = time.time() + 900
            while time.time() < deadline and first.poll() is None:
                if final_packs(results) >= 3 and _running_packs(results) >= 1:
                    break
                time.sleep(0.2)
            assert first.poll() is None, "the driver ended before it could be killed:\n" + \
                (tmp_path / "driver1.log").read_text()[-4000:]
            first.send_signal(signal.SIGKILL)  # the driver dies without grace; its trials die with its job
            first.wait(30)
            killed_driver_at = time.time() - t0
        finally:
            end_group(first)
            log1.close()

        # status from storage alone while the sweep is down: what the Parquet holds
        status = subprocess.run([sys.executable, "-m", "tune_jobs", "status", str(results)], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr[-2000:]
        runs_now = read_runs(str(results), columns=["run_id", "status"])
        n_final = int((runs_now["status"] != "running").sum())
        assert f"progress    {n_final}/{N_RUNS} runs finished" in status.stdout, status.stdout
        assert "eta         " in status.stdout and "eta         unknown" not in status.stdout

        try:
            second = subprocess.run(_cmd(grid, storage, cluster.address), cwd=REPO, env=env, capture_output=True,
                                    text=True, timeout=1200, start_new_session=True)
            wall_chaos = time.time() - t0
            while len(chaos.kills) < MIN_KILLS and time.time() - t0 < 1500:
                time.sleep(1)  # (only if the sweep was faster than the kills: the count below fails it)
        finally:
            chaos.stop.set()
            chaos.join(300)
        first_out = (tmp_path / "driver1.log").read_text()
        assert second.returncode == 0, second.stdout[-5000:] + second.stderr[-3000:]
        assert "resuming the Tune experiment" in second.stdout
        assert f"finished    {N_RUNS}/{N_RUNS} runs" in second.stdout
        kills_during_sweep = sum(k - t0 <= wall_chaos for k in chaos.kills)
        retries = (first_out + second.stdout).count(" retry ")

    t1 = time.time()
    _uninterrupted(results, tmp_path / "ref", tmp_path)
    wall_ref = time.time() - t1
    a, b = read_epochs(str(results)), read_epochs(str(tmp_path / "ref"))  # raise on a duplicate
    assert len(a) == N_RUNS * (EPOCHS + 1) and not a.duplicated(["run_id", "epoch"]).any()
    pd.testing.assert_frame_equal(_sorted(a, ["run_id", "epoch"]).drop(columns="wall_time"),
                                  _sorted(b, ["run_id", "epoch"]).drop(columns="wall_time"), check_exact=True)
    ra, rb = read_runs(str(results)), read_runs(str(tmp_path / "ref"))
    assert len(ra) == N_RUNS and ra["run_id"].is_unique and set(ra["status"]) <= {"completed", "early_stopped",
                                                                                  "diverged"}
    pd.testing.assert_frame_equal(_sorted(ra, "run_id").drop(columns=VOLATILE_RUN_COLUMNS),
                                  _sorted(rb, "run_id").drop(columns=VOLATILE_RUN_COLUMNS), check_exact=True)
    after = subprocess.run([sys.executable, "-m", "tune_jobs", "status", str(results)], cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    assert f"progress    {N_RUNS}/{N_RUNS} runs finished" in after.stdout and "eta         done" in after.stdout
    assert "failed      " not in after.stdout  # every failure was retried to the end
    assert retries == 0 or "recovered   " in after.stdout, after.stdout  # their error files, listed as recovered
    print(f"\nchaos: {kills_during_sweep} worker nodes killed during the sweep ({len(chaos.kills)} in all, "
          f"every {CHAOS_PERIOD_S:.0f}s), {retries} trial retries, driver SIGKILL at {killed_driver_at:.0f}s "
          f"with {n_final}/{N_RUNS} runs final; wall {wall_chaos:.0f}s with chaos; "
          f"the reference in this process {wall_ref:.0f}s; "
          f"{len(a)} epochs rows + {len(ra)} runs rows equal to the reference; replacement errors {chaos.errors}")
    assert kills_during_sweep >= MIN_KILLS, f"only {kills_during_sweep} nodes killed while the sweep ran"
    assert retries >= 1, "no trial was retried: the kills hit no trial"
