"""python tests/loopback_node.py HEAD_ADDRESS NUM_CPUS: one Ray worker node on 127.0.0.1, until killed.

`ray start --address ...` refuses to add a node when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and
without it rewrites --node-ip-address 127.0.0.1 to the machine's network address; a multi-node
cluster that stays on loopback therefore starts its worker nodes as ray.cluster_utils.Cluster
does (ray._private.node.Node with head=False), one process per node so that a test can kill a
node (its raylet, object store and workers: the process group) without grace.
"""

import os
import signal
import sys
import time

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray is imported: loopback addresses stay loopback

import ray._private.node  # noqa: E402
import ray._private.parameter  # noqa: E402


def main() -> None:
    address, cpus = sys.argv[1], int(sys.argv[2])
    params = ray._private.parameter.RayParams(
        gcs_address=address, node_ip_address="127.0.0.1", num_cpus=cpus, num_gpus=0,
        object_store_memory=150 * 1024 * 1024, min_worker_port=0, max_worker_port=0,
        node_manager_port=0, include_log_monitor=False, dashboard_agent_listen_port=None)
    node = ray._private.node.Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    print(f"worker node {node.node_id} on {node.node_ip_address} joined {address}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # graceful stop: Node's atexit ends its processes
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
