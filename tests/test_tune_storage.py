"""A local --storage on a multi-node cluster (slow): shared by every node -> the sweep runs; one
node that cannot see it -> the sweep stops before any trial and names that node.

    python -m pytest -m slow tests/test_tune_storage.py      # ~2 min on 2 CPU cores; root for unshare

The cluster is a loopback Ray cluster (tests/loopback_cluster.py): a head with 0 CPUs and worker
nodes on one machine, so a plain folder is shared by all of them. The node that does not share
it runs in its own mount namespace (`unshare -m`) with an empty tmpfs mounted over the storage
folder: what it writes there only it can see, as on a node with its own local disk.
"""

import os
import shutil
import subprocess
import sys

import pytest

from initmem.results import read_runs
from loopback_cluster import REPO, LoopbackCluster

pytestmark = pytest.mark.slow
GRID = ("name: shared\n"
        "fixed: {dataset: synthetic, width: 0.125, train_subset: 128, eval_subset: 64, batch_size: 32, epochs: 1}\n"
        "axes: {sigma_w: [0.5, 2.0], optimizer: [sgd, adam]}\n")


def _can_unshare() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare command"
    if os.geteuid() != 0:
        return "a private mount namespace needs root"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt && umount /mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"unshare -m / mount tmpfs refused: {probe.stderr.strip()}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LoopbackCluster(tmp_path_factory.mktemp("cluster"), workers=2, head_cpus=0) as c:
        yield c


def _sweep(tmp_path, storage, cluster):
    grid = tmp_path / "shared.yaml"
    grid.write_text(GRID)
    return subprocess.run([sys.executable, "-m", "tune_jobs", str(grid), "--preset", "full", "--storage", str(storage),
                           "--address", cluster.address, "--no-report", "--max-pack-size", "1"],
                          cwd=REPO, env=cluster.driver_env(), capture_output=True, text=True, timeout=400,
                          start_new_session=True)


def test_storage_shared_by_every_node_runs(cluster, tmp_path):
    storage = tmp_path / "store"
    proc = _sweep(tmp_path, storage, cluster)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "storage     shared by all 3 nodes" in proc.stdout and "finished    4/4 runs" in proc.stdout
    runs = read_runs(str(storage / "shared"))
    assert len(runs) == 4 and set(runs["status"]) == {"completed"}
    assert not list((storage / "shared").glob(".node-probe-*"))  # the probe files are gone


def test_storage_a_node_cannot_see_stops_the_sweep(cluster, tmp_path):
    why = _can_unshare()
    if why:
        pytest.skip(why)
    storage = tmp_path / "store"
    storage.mkdir()
    private = cluster.add_worker(private_mount=str(storage))
    try:
        node_id = next(ln.split()[2] for ln in (cluster.tmp / f"worker{cluster._n}.log").read_text().splitlines()
                       if ln.startswith("worker node "))
        proc = _sweep(tmp_path, storage, cluster)
    finally:
        cluster.kill_worker(private)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    err = proc.stderr
    assert f"--storage {storage} is a local path but 1 of the cluster's 4 nodes do not share it" in err, err[-2000:]
    assert f"({node_id[:8]}): wrote its file, which this driver cannot see" in err
    assert "s3://" in err and "gs://" in err and "mounted on every node" in err
    assert not (storage / "shared" / "runs").exists() and "start   " not in proc.stdout  # no trial started
    assert not list((storage / "shared").glob(".node-probe-*"))
