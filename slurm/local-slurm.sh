#!/usr/bin/env bash
# A one-node SLURM on this machine for tests and CI (root; Debian/Ubuntu): munge, slurmctld, slurmd.
#
#   slurm/local-slurm.sh start     # install slurm-wlm + munge if missing, write a config, start the daemons
#   slurm/local-slurm.sh status    # sinfo
#   slurm/local-slurm.sh stop      # stop the daemons this script started (by their pid files)
#
# Idempotent: `start` on a machine where it already runs only checks that the node is idle.
# The node is this host (its CPUs and memory from `slurmd -C`); traffic stays on 127.0.0.1.
# No cgroups: processes are tracked with proctrack/linuxproc, tasks are not confined.
set -euo pipefail

CONF_DIR=/etc/slurm
STATE=/var/spool/slurm-initmem
RUN=/run/slurm-initmem
HOST=$(hostname -s)

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null)
}

write_conf() {
  mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$RUN"
  local node
  node=$(slurmd -C | head -1)    # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
  cat > "$CONF_DIR/slurm.conf" <<CONF
# written by initmem slurm/local-slurm.sh: a one-node SLURM for tests
ClusterName=initmem-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
KillWait=10
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
  # no cgroup.conf is needed with proctrack/linuxproc and task/none
}

alive() {  # pid file -> running?
  [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
  install
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    sinfo                      # a SLURM (this one, or the site's) already answers: use it as it is
    return 0
  fi
  if [[ -f "$CONF_DIR/slurm.conf" ]] && ! grep -q "written by initmem slurm/local-slurm.sh" "$CONF_DIR/slurm.conf"; then
    echo "local-slurm: $CONF_DIR/slurm.conf exists and is not ours; not overwriting it" >&2
    return 1
  fi
  write_conf
  if ! pgrep -x munged >/dev/null; then
    [[ -s /etc/munge/munge.key ]] || { mungekey -c 2>/dev/null || /usr/sbin/create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged
  fi
  alive "$RUN/slurmctld.pid" || slurmctld
  alive "$RUN/slurmd.pid" || slurmd
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      sinfo
      return 0
    fi
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  echo "local-slurm: the node did not become idle; logs in $STATE" >&2
  sinfo >&2 || true
  return 1
}

stop() {
  for d in slurmd slurmctld; do
    if alive "$RUN/$d.pid"; then kill "$(cat "$RUN/$d.pid")"; fi
  done
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
