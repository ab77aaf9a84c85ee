"""Joining Ray for a sweep: cluster addresses (loopback heads included), the local default, and
storage that every node of a cluster can reach.

    python -m tune_jobs.main_grid --preset smoke --address 127.0.0.1:6379   # a head on loopback
    python -m tune_jobs.main_grid --preset smoke                            # always a fresh local Ray

An address is checked before Ray is imported: a TCP connect (nothing listens: fail at once), then
a probe in a child process that asks the head's GCS for its nodes (PROBE_TIMEOUT_S at most, so a
port that answers but is not a Ray head, or a head that refuses this client, fails within a
minute instead of Ray's endless "Failed to connect to GCS" retries). When the head's nodes sit on
loopback (a head started with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, or --node-ip-address
127.0.0.1), the driver must not rewrite a loopback address to this machine's network address
(ray/_private/services.py: resolve_ip_for_localhost, ENABLE_RAY_CLUSTER): the probe's answer sets
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 for this process, as the head had it.

Without --address and RAY_ADDRESS the sweep calls ray.init(address="local"): a new local Ray,
whatever <ray temp dir>/ray_current_cluster (written by `ray start`, never removed when that
cluster dies without `ray stop`) names.

On a cluster of several nodes with a local --storage path, check_shared_storage runs a tiny task
on every node that writes a file under the experiment folder; the driver must see each file
(a shared mount) or the sweep stops and names the nodes that did not, before any trial starts.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import posixpath
import secrets
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Callable

from tune_jobs.errors import SweepError

if TYPE_CHECKING:
    from tune_jobs.runner import SweepOptions

PROBE_TIMEOUT_S = 30.0       # the GCS probe of an address, in seconds (a live head answers in well under 1 s)
STORAGE_PROBE_TIMEOUT_S = 60.0  # per-node storage probe tasks, in seconds
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

# Run by `python -c` in a child process: the head's nodes as JSON on stdout. Only ray._raylet is
# needed (the GCS client), and the child can be killed at the deadline whatever it is doing.
_PROBE = r"""
import json, sys
from ray._raylet import GcsClient
client = GcsClient(address=sys.argv[1])
nodes = client.get_all_node_info(timeout=20)
print(json.dumps([{"id": k.hex() if hasattr(k, "hex") else str(k), "ip": n.node_manager_address,
                   "alive": n.state == 0, "head": bool(n.is_head_node)} for k, n in nodes.items()]))
"""


def split_address(address: str) -> tuple[str, int]:
    """host:port (or ray://host:port) -> (host, port), or a SweepError naming the allowed forms."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--address {address!r} is not a Ray cluster address: use host:port "
                    "(e.g. 127.0.0.1:6379), ray://host:10001 or auto")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast when nothing listens at a cluster address (ray.init would wait a long time)."""
    if address in ("auto", "local"):
        return
    host, port = split_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as e:
        raise SweepError(f"cannot reach a Ray cluster at {address}: {e.strerror or e}. Start one "
                    "(`ray start --head` here, `ray up cluster.yaml` on AWS) and pass its address, "
                    "or leave --address out to run on a local Ray.") from None


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


def check_grpc(address: str, timeout_s: float = 5.0) -> None:
    """Fail within seconds when the address listens but is no gRPC server (a Ray head's GCS is one):
    an HTTP/2 server opens every connection with a SETTINGS frame (RFC 9113, 3.4), which a silent
    service, a dashboard (HTTP/1.1) or a database never sends. Skipped under RAY_USE_TLS (a TLS
    GCS speaks TLS first); probe_head then decides."""
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.sendall(HTTP2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = conn.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except OSError:  # a timeout or a reset: nothing that speaks gRPC
        head = b""
    if len(head) < 9 or head[3] != 0x04:
        raise SweepError(f"{address} accepts connections but is not a Ray head: it does not answer as a gRPC "
                         f"server within {timeout_s:.0f}s. Pass the head's GCS port (`ray start --head --port "
                         "PORT`, default 6379), not the dashboard (8265), the Ray Client port (10001, which "
                         "takes ray://) or another service.")


def probe_head(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> list[dict]:
    """The nodes of the Ray head at host:port ({id, ip, alive, head} each), asked in a child process
    that is killed after timeout_s; a SweepError says why when there is no usable head there."""
    host, port = split_address(address)
    env = dict(os.environ)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, f"{host}:{port}"], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise SweepError(f"{address} accepts connections but no Ray head answered within {timeout_s:.0f}s: is it the "
                    "head's GCS port (`ray start --head --port PORT`, default 6379), not the dashboard (8265) "
                    "or another service? With token authentication set RAY_AUTH_MODE=token and the "
                    "cluster's token (RAY_AUTH_TOKEN, or `ray get-auth-token` on the head).") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        hint = (" With token authentication (Ray >= 2.52) set RAY_AUTH_MODE=token and the cluster's token "
                "(RAY_AUTH_TOKEN, or `ray get-auth-token` on the head)." if "uth" in why else "")
        raise SweepError(f"the Ray head at {address} cannot be joined: {why}.{hint}")
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SweepError(f"the Ray head at {address} gave an unreadable node list: {proc.stdout[-300:]!r}") from None


def prepare_address(address: str) -> None:
    """Checks before ray.init(address): reachable, a Ray head that answers, and loopback heads joined
    on loopback. ray:// (Ray Client) is only checked to be listening (its server is not a GCS); auto is
    left to Ray."""
    if address in ("auto", "local"):
        return
    if address.startswith("ray://"):
        check_address(address)   # nothing listening: fail now, not after Ray Client's 30 s of retries
        return
    check_address(address)
    check_grpc(address.split("://", 1)[-1])
    deadline = time.time() + PROBE_TIMEOUT_S
    while True:  # a head that is still starting has its GCS port open before its node registers
        nodes = probe_head(address.split("://", 1)[-1], timeout_s=max(5.0, deadline - time.time()))
        heads = [n for n in nodes if n["head"] and n["alive"]] or [n for n in nodes if n["alive"]]
        if heads:
            break
        if time.time() > deadline:
            raise SweepError(f"the Ray cluster at {address} has no live node after {PROBE_TIMEOUT_S:.0f}s "
                        f"(nodes: {nodes}): is its head still starting, or did it fail?")
        time.sleep(1.0)
    if is_loopback(split_address(address)[0]) and is_loopback(heads[0]["ip"]):
        # the head lives on loopback: join it there instead of this machine's network address
        os.environ[LOOPBACK_ENV] = "0"
        if "ray" in sys.modules:  # already imported (tests, notebooks): Ray reads the constant at call time
            import ray._private.ray_constants as rc
            rc.ENABLE_RAY_CLUSTER = False


def wait_for_nodes(address: str, n: int, timeout_s: float = 180.0, poll_s: float = 2.0) -> int:
    """Wait until the head at `address` (host:port) counts `n` live nodes; returns the count. While the
    head is starting its probe may fail; at the deadline a head that never answered (nothing there,
    not a Ray head, a wrong token) raises probe_head's SweepError with the reason, instead of
    counting it as zero nodes."""
    deadline = time.time() + timeout_s
    alive, error = 0, None
    while True:
        try:
            nodes = probe_head(address, timeout_s=max(5.0, min(PROBE_TIMEOUT_S, deadline - time.time())))
            alive, error = sum(1 for x in nodes if x["alive"]), None
        except SweepError as e:
            error = e
        if alive >= n:
            return alive
        if time.time() >= deadline:
            if error is not None:
                raise error
            return alive
        time.sleep(poll_s)


def main(argv=None) -> int:
    """python -m tune_jobs.cluster wait ADDRESS N [--timeout S]: exit 0 when N nodes are alive, 1 when
    fewer are after S seconds, 2 when the head refuses (the reason is printed); for job scripts
    (slurm/initmem.sbatch)."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m tune_jobs.cluster", description="Wait for a Ray cluster's nodes.")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wait", help="wait until N nodes are alive at ADDRESS")
    w.add_argument("address", help="the head's GCS address, host:port")
    w.add_argument("nodes", type=int, help="live nodes to wait for")
    w.add_argument("--timeout", type=float, default=180.0, help="seconds; default: 180")
    args = p.parse_args(argv)
    try:
        alive = wait_for_nodes(args.address, args.nodes, args.timeout)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{alive} of {args.nodes} node(s) alive at {args.address}")
    return 0 if alive >= args.nodes else 1


def connect_ray(opts: "SweepOptions", out: Callable[[str], None]) -> bool:
    """Connect to the cluster (--address or RAY_ADDRESS, e.g. inside `ray job submit`) or start a local
    Ray on loopback. Returns True when this call started Ray (and should shut it down)."""
    address = opts.address or os.environ.get("RAY_ADDRESS")
    if address and ("ray" not in sys.modules or not sys.modules["ray"].is_initialized()):
        prepare_address(address)  # before Ray is imported or started
    if not address and "ray" not in sys.modules:
        # A local Ray is one node: use the loopback address (Ray's single-node mode, as on macOS)
        # instead of this machine's network address. Read by Ray when it is imported.
        os.environ.setdefault(LOOPBACK_ENV, "0")
    import ray
    if not opts.verbose:  # "result.json not found" when a trial restarts before its first report
        logging.getLogger("ray.tune.logger.logger").setLevel(logging.ERROR)
    if ray.is_initialized():
        return False
    common = dict(logging_level=logging.INFO if opts.verbose else logging.WARNING,
                  log_to_driver=opts.verbose)
    if address:
        try:
            ray.init(address=address, **common)
        except Exception as e:  # noqa: BLE001 - ConnectionError, AuthenticationError, ...
            hint = (" With token authentication (Ray >= 2.52), set RAY_AUTH_MODE=token and the cluster's token "
                    "(RAY_AUTH_TOKEN, or `ray get-auth-token` on the head).")
            raise SweepError(f"cannot connect to the Ray cluster at {address}: {type(e).__name__}: {e}.{hint}") from None
        res = ray.cluster_resources()
        n_nodes = sum(n["Alive"] for n in ray.nodes())
        out(f"ray         connected to {address}: {n_nodes} node(s), {res.get('CPU', 0):g} CPUs, "
            f"{res.get('GPU', 0):g} GPUs")
        return False
    # Local Ray: workers import tune_jobs/initmem from this checkout even without `pip install -e .`
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if PROJECT_ROOT not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([PROJECT_ROOT] + paths)
    # Ray >= 2.59 turns token authentication on for a local cluster and warns that it did: keep it, quietly.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # address="local": always a new local Ray, never the cluster a stale ray_current_cluster file names
    ray.init(address="local", num_cpus=opts.num_cpus, include_dashboard=False, **common)
    res = ray.cluster_resources()
    out(f"ray         local Ray on {ray.util.get_node_ip_address()}: {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs "
        "(pass --address to use a cluster)")
    return True


# --- storage every node can reach ----------------------------------------------------------------------

def check_shared_storage(exp_dir: str, out: Callable[[str], None],
                         timeout_s: float = STORAGE_PROBE_TIMEOUT_S) -> None:
    """On a multi-node cluster with a local storage path: every live node writes a file under exp_dir
    (a zero-CPU task pinned to it) and the driver must see it; else a SweepError names the nodes."""
    if "://" in exp_dir:
        return  # an object store (s3://, gs://, ...) is reachable by URI from every node with credentials
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) < 2:
        return
    probe_dir = os.path.join(exp_dir, f".node-probe-{secrets.token_hex(4)}")
    os.makedirs(probe_dir, exist_ok=True)

    def write(path: str) -> str:  # on the node; nested, so it travels by value (no import needed there)
        import os as _os
        import socket as _socket
        _os.makedirs(_os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(_socket.gethostname())
        return _socket.gethostname()

    def remove(path: str) -> None:
        import os as _os
        import shutil as _shutil
        try:
            _os.remove(path)
        except OSError:
            pass
        if not _os.listdir(_os.path.dirname(path)):
            _shutil.rmtree(_os.path.dirname(path), ignore_errors=True)

    task = ray.remote(num_cpus=0, max_retries=0)(write)
    pin = {n["NodeID"]: NodeAffinitySchedulingStrategy(n["NodeID"], soft=False) for n in nodes}
    path = {n["NodeID"]: posixpath.join(probe_dir, n["NodeID"]) for n in nodes}
    refs = {task.options(scheduling_strategy=pin[nid]).remote(path[nid]): nid for nid in pin}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    problems: dict[str, str] = {}
    gone: set[str] = set()  # nodes that died during the check (or just before: Ray still listed them)
    for ref, nid in refs.items():
        if ref not in ready:
            problems[nid] = f"no answer within {timeout_s:.0f}s"
            continue
        try:
            ray.get(ref)
        except (ray.exceptions.TaskUnschedulableError, ray.exceptions.NodeDiedError,
                ray.exceptions.WorkerCrashedError, ray.exceptions.LocalRayletDiedError):
            gone.add(nid)  # "the node ... doesn't exist any more", or it died under the task
            continue
        except Exception as e:  # noqa: BLE001 - the node could not write there
            problems[nid] = f"cannot write there ({type(e).__name__}: {str(e).strip().splitlines()[-1][:200]})"
            continue
        if not os.path.exists(path[nid]):
            problems[nid] = "wrote its file, which this driver cannot see"
    alive_now = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    gone |= {nid for nid in problems if nid not in alive_now}
    for nid in gone:
        problems.pop(nid, None)
    if problems:  # tidy what the nodes wrote on their own disks (best effort), then stop
        undo = ray.remote(num_cpus=0, max_retries=0)(remove)
        ray.wait([undo.options(scheduling_strategy=pin[nid]).remote(path[nid]) for nid in problems],
                 num_returns=len(problems), timeout=10)
    _remove_tree(probe_dir)
    if problems:
        ips = {n["NodeID"]: n["NodeManagerAddress"] for n in nodes}
        listing = "; ".join(f"node {ips[nid]} ({nid[:8]}): {why}" for nid, why in problems.items())
        raise SweepError(f"--storage {os.path.dirname(exp_dir)} is a local path but {len(problems)} of the cluster's "
                    f"{len(nodes)} nodes do not share it with this driver: {listing}. Each node would write its "
                    "results to its own disk and a retried trial on another node would not find them. Use a URI "
                    "every node can reach (--storage s3://bucket/path, gs://bucket/path) or a folder on a "
                    "filesystem mounted on every node at the same path (NFS, Lustre, ...).")
    left = f"; {len(gone)} left the cluster during the check" if gone else ""
    out(f"storage     shared by all {len(nodes) - len(gone)} nodes (each wrote a file this driver sees{left})")


def _remove_tree(path: str) -> None:
    import shutil
    for _ in range(3):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            return
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
