"""A multi-node Ray cluster on 127.0.0.1 made of `ray start` processes, for the slow tests.

    with LoopbackCluster(tmp_path, workers=2, head_cpus=0) as c:    # head + 2 worker nodes
        c.address                                                  # "127.0.0.1:PORT" for --address
        c.kill_worker(c.workers[0]); c.add_worker()                # a node lost without grace, replaced

Every node listens on loopback only: the head is `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start
--head`, the workers tests/loopback_node.py (`ray start` cannot add a loopback worker). Each node runs
in its own session, so a node is killed (SIGKILL, no grace) with its whole process group: the
raylet, its object store and its worker processes. `private_mount` starts a worker inside its own
mount namespace (`unshare -m`, root) with a tmpfs over that folder: a node that does not share
the storage. The token file makes the cluster token-authenticated like a real one.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def final_packs(results) -> int:
    """Packs whose runs all have a final status in the runs Parquet under `results` (0 while none is
    readable: a file may be mid-replace)."""
    from initmem.results import read_runs
    try:
        runs = read_runs(str(results), columns=["pack_id", "status"])
    except Exception:  # noqa: BLE001 - a file being replaced
        return 0
    return int(runs.groupby("pack_id")["status"].agg(lambda s: (s != "running").all()).sum()) if len(runs) else 0


def end_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal a process this helper started in its own session, and everything in its group."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        pass


class LoopbackCluster:
    def __init__(self, tmp: Path, workers: int = 2, head_cpus: int = 0, worker_cpus: int = 1):
        self.tmp = Path(tmp)
        self.worker_cpus = worker_cpus
        self.token = self.tmp / "auth_token"
        self.token.write_text(secrets.token_hex(32))
        self.token.chmod(0o600)
        # short: Ray's unix socket paths are length-limited
        self.temp_dir = Path("/tmp") / f"rl{secrets.token_hex(3)}"
        self.port, self.client_port = free_ports(2)
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token),
                    "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
        self.env.pop("RAY_ADDRESS", None)
        self.env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # drivers: nothing set about loopback
        self.head: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.killed = 0
        self._n = 0
        self._n_workers, self._head_cpus = workers, head_cpus

    def driver_env(self) -> dict:
        """The environment of a driver process: the cluster's token, nothing about loopback."""
        return dict(self.env)

    def _log(self, name: str):
        return open(self.tmp / f"{name}.log", "w")

    def start(self) -> "LoopbackCluster":
        (dash,) = free_ports(1)
        # the head as the user starts it: loopback only
        self.head = subprocess.Popen(
            ["ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(self.port),
             "--ray-client-server-port", str(self.client_port), "--num-cpus", str(self._head_cpus),
             "--include-dashboard", "false", "--dashboard-port", str(dash),
             "--temp-dir", str(self.temp_dir), "--disable-usage-stats"],
            env={**self.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}, stdout=self._log("head"), stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_nodes(1)
        for _ in range(self._n_workers):
            self.add_worker()
        self.wait_nodes(1 + self._n_workers)
        return self

    def add_worker(self, private_mount: str | None = None, timeout_s: float = 180) -> subprocess.Popen:
        """Start a worker node and wait until it has joined (a start that times out on a loaded
        machine, Ray's 30 s raylet registration, is tried again)."""
        deadline = time.time() + timeout_s
        while True:
            self._n += 1
            log = self.tmp / f"worker{self._n}.log"
            cmd = [sys.executable, str(REPO / "tests" / "loopback_node.py"), self.address, str(self.worker_cpus)]
            if private_mount:
                # its own mount namespace with an empty tmpfs over the folder: it cannot see the driver's files
                Path(private_mount).mkdir(parents=True, exist_ok=True)
                inner = (f"mount -t tmpfs -o size=64m tmpfs '{private_mount}' && exec "
                         + " ".join(f"'{c}'" for c in cmd))
                cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", inner]
            proc = subprocess.Popen(cmd, env=self.env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                    start_new_session=True)
            while proc.poll() is None and "joined" not in log.read_text() and time.time() < deadline:
                time.sleep(0.5)
            if proc.poll() is None and "joined" in log.read_text():
                self.workers.append(proc)
                return proc
            end_group(proc)
            if time.time() >= deadline:
                raise RuntimeError(f"worker node {self._n} did not join {self.address}: {log.read_text()[-2000:]}")

    def kill_worker(self, proc: subprocess.Popen) -> None:
        """Lose a worker node without grace: SIGKILL to its raylet, object store and workers at once."""
        end_group(proc, signal.SIGKILL)
        self.workers.remove(proc)
        self.killed += 1

    def alive_nodes(self) -> int:
        code = ("import ray._raylet as r, sys; c = r.GcsClient(address=sys.argv[1]); "
                "print(sum(n.state == 0 for n in c.get_all_node_info(timeout=10).values()))")
        try:
            p = subprocess.run([sys.executable, "-c", code, self.address], env=self.env, capture_output=True, text=True,
                               timeout=60)
            return int(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else 0
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            return 0

    def wait_nodes(self, n: int, timeout_s: float = 120) -> None:
        deadline = time.time() + timeout_s
        while self.alive_nodes() < n:
            if time.time() > deadline or (self.head is not None and self.head.poll() is not None):
                raise RuntimeError(f"the loopback cluster did not reach {n} live nodes: "
                                   + (self.tmp / "head.log").read_text()[-2000:])
            time.sleep(1)

    def stop(self) -> None:
        for proc in list(self.workers):
            end_group(proc, signal.SIGKILL)
        if self.head is not None:
            end_group(self.head, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LoopbackCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
