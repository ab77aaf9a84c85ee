"""--address and the local default on real Ray (slow): loopback heads, things that are not Ray
heads, heads that refuse the client, and a stale ray_current_cluster file.

    python -m pytest -m slow tests/test_tune_address.py      # ~4 min on 2 CPU cores

Every driver is a subprocess started as a user would (python -m tune_jobs ...), with nothing set
about loopback (no RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER, no RAY_ADDRESS).
"""

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from initmem.results import read_epochs, read_runs
from loopback_cluster import REPO, LoopbackCluster, free_ports

pytestmark = pytest.mark.slow
GRID = ("name: addr\n"
        "fixed: {dataset: synthetic, width: 0.125, train_subset: 128, eval_subset: 64, batch_size: 32, epochs: 2}\n"
        "axes: {sigma_w: [0.5, 2.0]}\n")


def _sweep(tmp_path, storage, address, env, timeout=300):
    grid = tmp_path / "addr.yaml"
    grid.write_text(GRID)
    cmd = [sys.executable, "-m", "tune_jobs", str(grid), "--preset", "full", "--storage", str(storage), "--no-report"]
    if address:
        cmd += ["--address", address]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)
    return proc, time.time() - t0


@pytest.fixture(scope="module")
def loopback_head(tmp_path_factory):
    """RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head: listens on 127.0.0.1 only."""
    with LoopbackCluster(tmp_path_factory.mktemp("head"), workers=0, head_cpus=2) as c:
        yield c


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_head_is_joined_without_settings(loopback_head, tmp_path, host):
    env = loopback_head.driver_env()
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in env and "RAY_ADDRESS" not in env
    with socket.create_connection(("127.0.0.1", loopback_head.port), timeout=5):
        pass  # the head answers on loopback ...
    address = f"{host}:{loopback_head.port}"
    proc, wall = _sweep(tmp_path, tmp_path / "store", address, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"connected to {address}: 1 node(s)" in proc.stdout and "finished    2/2 runs" in proc.stdout
    runs = read_runs(str(tmp_path / "store" / "addr"))
    assert len(runs) == 2 and set(runs["status"]) == {"completed"}
    assert len(read_epochs(str(tmp_path / "store" / "addr"))) == 2 * 3
    print(f"--address {address}: {wall:.0f}s")


def test_head_that_refuses_the_client_fails_within_a_minute(loopback_head, tmp_path):
    wrong = tmp_path / "wrong_token"
    wrong.write_text(secrets.token_hex(32))
    wrong.chmod(0o600)
    env = {**loopback_head.driver_env(), "RAY_AUTH_TOKEN_PATH": str(wrong)}
    proc, wall = _sweep(tmp_path, tmp_path / "store", loopback_head.address, env, timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"the Ray head at {loopback_head.address} cannot be joined" in proc.stderr \
        or f"{loopback_head.address} accepts connections but no Ray head answered" in proc.stderr, proc.stderr[-2000:]
    assert "RAY_AUTH_MODE=token" in proc.stderr
    assert wall < 60 and not (tmp_path / "store" / "addr" / "runs").exists()
    print(f"wrong token: exit 2 after {wall:.0f}s: {proc.stderr.strip().splitlines()[-1][:300]}")
    # the job script's wait (slurm/initmem.sbatch) says the same instead of counting 0 nodes
    wait = [sys.executable, "-m", "tune_jobs.cluster", "wait", loopback_head.address, "1", "--timeout", "5"]
    bad = subprocess.run(wait, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "RAY_AUTH_MODE=token" in bad.stderr, bad.stdout + bad.stderr
    good = subprocess.run(wait, cwd=REPO, env=loopback_head.driver_env(), capture_output=True, text=True, timeout=120)
    assert good.returncode == 0 and f"1 of 1 node(s) alive at {loopback_head.address}" in good.stdout, good.stderr


def test_address_that_is_not_a_ray_head_fails_within_a_minute(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    held = []

    def accept():  # accepts connections, never answers: like a port of some other service
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    try:
        proc, wall = _sweep(tmp_path, tmp_path / "store", f"127.0.0.1:{port}", env, timeout=120)
    finally:
        server.close()
        for c in held:
            c.close()
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"127.0.0.1:{port} accepts connections but is not a Ray head" in proc.stderr, proc.stderr[-2000:]
    assert wall < 30  # the gRPC check's 5 s, not the GCS probe's 30 s
    print(f"not a Ray head: exit 2 after {wall:.0f}s")


def test_stale_current_cluster_file_does_not_stop_the_local_default(tmp_path):
    tmpdir = Path("/tmp") / f"rs{secrets.token_hex(3)}"  # Ray's temp dir for this driver: <tmpdir>/ray
    (tmpdir / "ray").mkdir(parents=True)
    (closed,) = free_ports(1)  # nothing listens there: a head that died without `ray stop`
    (tmpdir / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{closed}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    env.update(RAY_TMPDIR=str(tmpdir), PYTHONPATH=str(REPO))
    storage = tmp_path / "store"
    try:
        proc = subprocess.run([sys.executable, "-m", "tune_jobs.main_grid", "--preset", "smoke", "--set",
                               "dataset=synthetic", "--set", "train_subset=128", "--set", "eval_subset=32", "--set", "epochs=1",
                               "--storage", str(storage), "--no-report"],   # tiny runs: what matters is that it starts
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=500, start_new_session=True)
    finally:
        import shutil
        shutil.rmtree(tmpdir, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "local Ray on 127.0.0.1" in proc.stdout and "finished    20/20 runs" in proc.stdout
    assert len(read_runs(str(storage / "main_grid_smoke"))) == 20
