"""slurm/initmem.sbatch: the commands it generates (fast, no SLURM needed) and, on a one-node SLURM
(.ci/run starts one: slurm/local-slurm.sh start), two jobs sharing the node end to end: submitted
together, one cancelled mid-run while the other completes, then the cancelled one resubmitted beside
a third; every result complete, nothing lost or duplicated (slow).

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
    e.update({"INITMEM_SLURM_DRY_RUN": "1", "SLURM_JOB_NODELIST": nodelist, "SLURM_JOB_ID": "4242",
              "SLURM_CPUS_ON_NODE": "16", **env})
    return subprocess.run(["bash", str(SBATCH), *args], capture_output=True, text=True, env=e, timeout=60)


def test_dry_run_three_nodes_head_first_workers_by_srun():
    proc = _dry("gpu01,gpu02,gpu03", "main_grid", "--preset", "full", "--storage", "/shared/initmem", "--device", "cuda")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln and not ln.startswith("initmem.sbatch:")]
    assert len(lines) == 4, proc.stdout
    head, w1, w2, driver = lines
    port = 20000 + 4242 % 120 * 100                          # the job's own block of 100 ports in 20000-31999
    assert head.startswith("srun --nodes=1 --ntasks=1 -w gpu01 ") and "ray.scripts.scripts start --head --block" in head
    assert f"--port {port} --ray-client-server-port {port + 1} " in head and "--num-cpus 16" in head
    assert "--temp-dir /tmp/ray-4242" in head and f"--min-worker-port {port + 10} --max-worker-port {port + 99}" in head
    assert head.split(" --overlap ")[1].startswith("python -m ray.scripts.scripts")  # INITMEM_PYTHON's ray
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in head  # several nodes: a network address
    for node, w in (("gpu02", w1), ("gpu03", w2)):
        assert w.startswith(f"srun --nodes=1 --ntasks=1 -w {node} ") and "ray.scripts.scripts start --block --address" in w
        assert f"--node-manager-port {port + 5} --object-manager-port {port + 6}" in w
        assert f":{port}" in w and "--head" not in w
    assert driver.startswith("python -u -m tune_jobs main_grid --preset full --storage /shared/initmem --device cuda "
                             "--address ") and driver.rstrip().endswith(f":{port}")
    assert all(ln.rstrip().endswith("&") for ln in (head, w1, w2)) and not driver.rstrip().endswith("&")


def test_dry_run_one_node_stays_on_loopback():
    proc = _dry("node7", "my_grid.yaml", "--preset", "smoke", INITMEM_RAY_PORT="23456")
    assert proc.returncode == 0, proc.stderr
    head, driver = [ln for ln in proc.stdout.splitlines() if ln and not ln.startswith("initmem.sbatch:")]
    assert "env RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 python -m ray.scripts.scripts start --head" in head
    assert "--node-ip-address 127.0.0.1 --port 23456" in head
    assert driver.rstrip().endswith("--address 127.0.0.1:23456")


def test_consecutive_jobs_get_port_blocks_that_do_not_overlap():
    blocks = []
    for job in ("4242", "4243"):
        out = _dry("node7", "main_grid", SLURM_JOB_ID=job).stdout
        blocks.append(int(re.search(r"ports (\d+)-(\d+)", out).group(1)))
    assert blocks[1] - blocks[0] == 100  # the last port of one is below the first of the next


def test_bad_use_is_refused_before_anything_starts():
    proc = _dry("node7", "main_grid", "--address", "10.0.0.1:6379")
    assert proc.returncode == 2 and "do not pass --address" in proc.stderr
    proc = _dry("node7")
    assert proc.returncode == 2 and "usage: sbatch slurm/initmem.sbatch" in proc.stderr
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "INITMEM_SLURM"))}
    proc = subprocess.run(["bash", str(SBATCH), "main_grid"], capture_output=True, text=True, env=e, timeout=60)
    assert proc.returncode == 2 and "not inside a SLURM job" in proc.stderr
    proc = _dry("node7", "main_grid", INITMEM_RAY_TMP="/scratch/" + "x" * 40)
    assert proc.returncode == 2 and "INITMEM_RAY_TMP=/scratch/xxx" in proc.stderr and "at most 40" in proc.stderr
    proc = _dry("node7", "main_grid", INITMEM_RAY_PORT_BLOCK="5")
    assert proc.returncode == 2 and "INITMEM_RAY_PORT_BLOCK=5 is not allowed: an integer >= 20" in proc.stderr


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


TINY = {"dataset": "synthetic", "epochs": 2, "train_subset": 128, "eval_subset": 64}   # seconds per pack


def _submit(tmp: Path, storage: Path, experiment: str) -> str:
    """sbatch the script from tmp (its logs go to tmp/logs/), one CPU, sharing the node with other jobs;
    the script picks the job's port block itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INITMEM_RAY", "RAY_ADDRESS"))}
    env["PYTHONPATH"] = str(REPO)
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.run(["sbatch", "--parsable", "--oversubscribe", "--cpus-per-task=1",
                           "--job-name", f"initmem-test-{experiment}", str(SBATCH), experiment, "--preset", "smoke",
                           *sets, "--storage", str(storage), "--no-report"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def _state(job: str) -> tuple[str, str]:
    p = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=60)
    state = re.search(r"JobState=(\S+)", p.stdout)
    code = re.search(r"ExitCode=(\S+)", p.stdout)
    return (state.group(1) if state else "GONE"), (code.group(1) if code else "?")


def _log(tmp: Path, job: str) -> str:
    f = tmp / "logs" / f"initmem-{job}.out"
    return f.read_text() if f.exists() else ""


def _wait_end(tmp: Path, job: str, timeout_s: float) -> tuple[str, str]:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        state, code = _state(job)
        if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return state, code
        time.sleep(2)
    subprocess.run(["scancel", job], timeout=60)
    raise AssertionError(f"job {job} still {state} after {timeout_s:.0f}s:\n{_log(tmp, job)[-3000:]}")


def _planned(experiment: str):
    """The runs the sbatch'ed command plans."""
    return get_experiment(experiment).runs("smoke", TINY)


def _pack_files(results: Path, pack: str) -> dict[str, int]:
    files = [results / "runs" / f"{pack}.parquet", *sorted((results / "epochs" / pack).glob("*.parquet"))]
    return {str(f): f.stat().st_mtime_ns for f in files}


def _complete(results: Path, experiment: str) -> None:
    """Every planned run once, completed, with every epoch once (epoch 0 before any update)."""
    planned = _planned(experiment)
    runs = read_runs(str(results))
    assert sorted(runs["run_id"]) == sorted(r.run_id for r in planned) and set(runs["status"]) == {"completed"}
    epochs = read_epochs(str(results))  # raises on a duplicated (run_id, epoch)
    want = {r.run_id: list(range(r.epochs + 1)) for r in planned}
    assert len(epochs) == sum(map(len, want.values()))
    assert all(sorted(g) == want[rid] for rid, g in epochs.groupby("run_id")["epoch"])


def _clean_end(tmp: Path, job: str, experiment: str) -> tuple[int, int]:
    """A completed job's log: its own port block, no colour codes, no srun noise after the sweep's
    clean end, which is its last line. Returns the job's port block."""
    out = _log(tmp, job)
    n = len(_planned(experiment))
    assert f"finished    {n}/{n} runs" in out, out[-3000:]
    assert "\x1b[" not in out and "srun: error" not in out and "CANCELLED" not in out, out[-3000:]
    assert out.rstrip().splitlines()[-1].startswith("initmem.sbatch: the sweep ended with exit status 0"), out[-800:]
    assert (tmp / "logs" / f"initmem-{job}.ray-{socket.gethostname().split('.')[0]}.log").exists()
    lo, hi = map(int, re.search(r"ports (\d+)-(\d+)", out).groups())
    return lo, hi


def _ray_left(job: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", f"/tmp/ray-{job}"], capture_output=True, text=True).stdout.split()


@pytest.mark.slow
def test_two_jobs_share_a_node_cancel_one_the_other_completes_resubmit_resumes(tmp_path):
    why = _slurm_missing()
    if why:
        pytest.skip(why)
    storage = tmp_path / "store"
    first_dir = storage / "main_grid_smoke"
    # 1. two jobs at once on the node: main_grid and lr_l2 (one CPU each)
    first, other = _submit(tmp_path, storage, "main_grid"), _submit(tmp_path, storage, "lr_l2")
    try:
        deadline = time.time() + 420
        while final_packs(first_dir) < 3:
            state, _ = _state(first)
            assert state in ("PENDING", "RUNNING", "CONFIGURING"), f"job {first} is {state} before 3 packs " \
                f"finished:\n{_log(tmp_path, first)[-3000:]}\n{_log(tmp_path, other)[-2000:]}"
            assert time.time() < deadline, "3 packs did not finish in time"
            time.sleep(0.5)
        assert _state(other)[0] == "RUNNING", "the other job is not running beside the first"
    finally:
        subprocess.run(["scancel", first], timeout=60)   # 2. cancel the first mid-run
    state, _ = _wait_end(tmp_path, first, 120)
    assert state == "CANCELLED", state
    time.sleep(5)
    assert not _ray_left(first), f"Ray processes of the cancelled job are still running: {_ray_left(first)}"
    done = read_runs(str(first_dir), columns=["pack_id", "status"])
    finished = [p for p, s in done.groupby("pack_id")["status"] if (s != "running").all()]
    n_packs = len(json.loads((first_dir / "plan.json").read_text())["packs"])
    assert 3 <= len(finished) < n_packs, f"{len(finished)} of {n_packs} packs finished before the cancel: not mid-run"
    before = {p: _pack_files(first_dir, p) for p in finished}

    state, code = _wait_end(tmp_path, other, 600)          # the other job was not disturbed
    assert (state, code) == ("COMPLETED", "0:0"), f"{state} {code}\n{_log(tmp_path, other)[-5000:]}"
    _complete(storage / "lr_l2_smoke", "lr_l2")
    blocks = {first: re.search(r"ports (\d+)-(\d+)", _log(tmp_path, first)).groups(),
              other: _clean_end(tmp_path, other, "lr_l2")}

    # 3. resubmit the cancelled job beside a third one; both complete, the first resumes
    again, third = _submit(tmp_path, storage, "main_grid"), _submit(tmp_path, storage, "long_sgd")
    for job, experiment in ((again, "main_grid"), (third, "long_sgd")):
        state, code = _wait_end(tmp_path, job, 600)
        assert (state, code) == ("COMPLETED", "0:0"), f"{state} {code}\n{_log(tmp_path, job)[-5000:]}"
        blocks[job] = _clean_end(tmp_path, job, experiment)
        _complete(storage / f"{experiment}_smoke", experiment)
    assert "resuming the Tune experiment" in _log(tmp_path, again)
    for p in finished:  # finished before the cancel: not trained again
        assert _pack_files(first_dir, p) == before[p], p
    # jobs that ran at the same time had port blocks of their own
    for a, b in ((first, other), (again, third)):
        (a0, a1), (b0, b1) = map(lambda x: tuple(map(int, x)), (blocks[a], blocks[b]))
        assert a1 < b0 or b1 < a0, blocks
