"""slurm/initmem.sbatch: the commands it generates (fast, no SLURM needed) and, on a one-node SLURM
(.ci/run starts one: slurm/local-slurm.sh start), the smoke main grid end to end: sbatch, scancel
mid-run, resubmit the same command, nothing lost or duplicated (slow).

    python -m pytest tests/test_slurm.py -q                       # dry mode only without SLURM
    slurm/local-slurm.sh start && python -m pytest -m slow tests/test_slurm.py   # ~4 min on 2 CPU cores
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from initmem.results import read_epochs, read_runs
from loopback_cluster import final_packs
from tune_jobs.grids import get_experiment

REPO = Path(__file__).resolve().parents[1]
SBATCH = REPO / "slurm" / "initmem.sbatch"


def _dry(nodelist: str, *args: str, **env) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    e.update(INITMEM_SLURM_DRY_RUN="1", SLURM_JOB_NODELIST=nodelist, SLURM_JOB_ID="4242", SLURM_CPUS_ON_NODE="16",
             **env)
    return subprocess.run(["bash", str(SBATCH), *args], capture_output=True, text=True, env=e, timeout=60)


def test_dry_run_three_nodes_head_first_workers_by_srun():
    proc = _dry("gpu01,gpu02,gpu03", "main_grid", "--preset", "full", "--storage", "/shared/initmem", "--device", "cuda")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln and not ln.startswith("initmem.sbatch:")]
    assert len(lines) == 4, proc.stdout
    head, w1, w2, driver = lines
    port = 6379 + 4242 % 1000
    assert head.startswith("srun --nodes=1 --ntasks=1 -w gpu01 ") and "ray start --head --block" in head
    assert f"--port {port}" in head and "--num-cpus 16" in head and "--temp-dir /tmp/ray-4242" in head
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in head  # several nodes: a network address
    for node, w in (("gpu02", w1), ("gpu03", w2)):
        assert w.startswith(f"srun --nodes=1 --ntasks=1 -w {node} ") and "ray start --block --address" in w
        assert f":{port}" in w and "--head" not in w
    assert driver.startswith("python -u -m tune_jobs main_grid --preset full --storage /shared/initmem --device cuda "
                             "--address ") and driver.rstrip().endswith(f":{port}")
    assert all(ln.rstrip().endswith("&") for ln in (head, w1, w2)) and not driver.rstrip().endswith("&")


def test_dry_run_one_node_stays_on_loopback():
    proc = _dry("node7", "my_grid.yaml", "--preset", "smoke", INITMEM_RAY_PORT="23456")
    assert proc.returncode == 0, proc.stderr
    head, driver = [ln for ln in proc.stdout.splitlines() if ln and not ln.startswith("initmem.sbatch:")]
    assert "env RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head" in head
    assert "--node-ip-address 127.0.0.1 --port 23456" in head
    assert driver.rstrip().endswith("--address 127.0.0.1:23456")


def test_bad_use_is_refused_before_anything_starts():
    proc = _dry("node7", "main_grid", "--address", "10.0.0.1:6379")
    assert proc.returncode == 2 and "do not pass --address" in proc.stderr
    proc = _dry("node7")
    assert proc.returncode == 2 and "usage: sbatch slurm/initmem.sbatch" in proc.stderr
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "INITMEM_SLURM"))}
    proc = subprocess.run(["bash", str(SBATCH), "main_grid"], capture_output=True, text=True, env=e, timeout=60)
    assert proc.returncode == 2 and "not inside a SLURM job" in proc.stderr


# --- end to end on a one-node SLURM ------------------------------------------------------------------

def _slurm_missing() -> str | None:
    for tool in ("sbatch", "squeue", "scancel", "scontrol", "sinfo"):
        if shutil.which(tool) is None:
            return f"SLURM is not installed ({tool} not found); .ci/run starts one with slurm/local-slurm.sh start"
    p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or not re.search(r"idle|mixed|allocated", p.stdout):
        return (f"no SLURM controller with a usable node here (sinfo: {(p.stdout + p.stderr).strip()[:200]!r}); "
                "start one with slurm/local-slurm.sh start")
    return None


def _free_port_block(n: int = 5) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65535 and all(_port_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no block of free ports")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _submit(tmp: Path, storage: Path, name: str) -> str:
    env = {**os.environ, "INITMEM_RAY_PORT": str(_free_port_block()), "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(["sbatch", "--parsable", "--chdir", str(tmp), "--output", str(tmp / f"{name}-%j.out"),
                           "--job-name", f"initmem-test-{name}", str(SBATCH), "main_grid", "--preset", "smoke",
                           "--set", "dataset=synthetic", "--storage", str(storage), "--no-report"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def _state(job: str) -> tuple[str, str]:
    p = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=60)
    state = re.search(r"JobState=(\S+)", p.stdout)
    code = re.search(r"ExitCode=(\S+)", p.stdout)
    return (state.group(1) if state else "GONE"), (code.group(1) if code else "?")


def _wait_end(job: str, timeout_s: float) -> tuple[str, str]:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        state, code = _state(job)
        if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return state, code
        time.sleep(2)
    subprocess.run(["scancel", job], timeout=60)
    raise AssertionError(f"job {job} still {state} after {timeout_s:.0f}s")


def _smoke_runs():
    """The runs the sbatch'ed command plans: the main grid's smoke on synthetic data."""
    return get_experiment("main_grid").runs("smoke", {"dataset": "synthetic"})


def _pack_files(results: Path, pack: str) -> dict[str, int]:
    files = [results / "runs" / f"{pack}.parquet", *sorted((results / "epochs" / pack).glob("*.parquet"))]
    return {str(f): f.stat().st_mtime_ns for f in files}


@pytest.mark.slow
def test_sbatch_smoke_scancel_mid_run_and_resubmit_completes(tmp_path):
    why = _slurm_missing()
    if why:
        pytest.skip(why)
    storage = tmp_path / "store"
    results = storage / "main_grid_smoke"
    first = _submit(tmp_path, storage, "first")
    try:
        deadline = time.time() + 420
        while final_packs(results) < 3:
            state, _ = _state(first)
            assert state in ("PENDING", "RUNNING", "CONFIGURING"), \
                f"job {first} is {state} before 3 packs finished: " + "".join(
                    p.read_text()[-3000:] for p in tmp_path.glob("first-*.out"))
            assert time.time() < deadline, "3 packs did not finish in time"
            time.sleep(0.5)
    finally:
        subprocess.run(["scancel", first], timeout=60)
    state, _ = _wait_end(first, 120)
    assert state == "CANCELLED", state
    done = read_runs(str(results), columns=["pack_id", "status"])
    finished = [p for p, s in done.groupby("pack_id")["status"] if (s != "running").all()]
    planned = _smoke_runs()
    n_packs = len(json.loads((results / "plan.json").read_text())["packs"])
    assert 3 <= len(finished) < n_packs, f"{len(finished)} of {n_packs} packs finished before the cancel: not mid-run"
    before = {p: _pack_files(results, p) for p in finished}
    ray_tmp = f"/tmp/ray-{first}"
    time.sleep(5)
    left = subprocess.run(["pgrep", "-f", ray_tmp], capture_output=True, text=True).stdout.split()
    assert not left, f"Ray processes of the cancelled job are still running: {left}"

    second = _submit(tmp_path, storage, "second")
    state, code = _wait_end(second, 600)
    out = "".join(p.read_text() for p in tmp_path.glob("second-*.out"))
    assert state == "COMPLETED" and code == "0:0", f"{state} {code}\n{out[-5000:]}"
    n = len(planned)
    assert "resuming the Tune experiment" in out and f"finished    {n}/{n} runs" in out
    assert "initmem.sbatch: job" in out and "1 node(s)" in out

    runs = read_runs(str(results))
    assert sorted(runs["run_id"]) == sorted(r.run_id for r in planned) and set(runs["status"]) == {"completed"}
    epochs = read_epochs(str(results))  # raises on a duplicated (run_id, epoch)
    want = {r.run_id: list(range(r.epochs + 1)) for r in planned}  # epoch 0 (before any update) .. epochs
    assert len(epochs) == sum(map(len, want.values()))
    assert all(sorted(g) == want[rid] for rid, g in epochs.groupby("run_id")["epoch"])
    for p in finished:  # finished before the cancel: not trained again
        assert _pack_files(results, p) == before[p], p
