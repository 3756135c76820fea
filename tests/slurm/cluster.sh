#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for tests: `cluster.sh up DIR` / `cluster.sh down DIR`.
#
#   up    installs slurm-wlm and munge with apt-get if they are missing, then starts a private munged and
#         slurmctld + slurmd configured in DIR (DIR/slurm.conf, DIR/gres.conf). /etc/slurm/slurm.conf and gres.conf
#         become links to them (srun inside a job step reads the default path: snakemake's jobstep executor drops
#         SLURM_CONF from the step's environment); an /etc/slurm/slurm.conf of a real installation is never
#         touched (the script skips instead). The node has this
#         machine's CPUs and memory (as `slurmd -C` reports them) and two fake GPUs (character devices
#         /dev/fakegpu0-1 declared as gres `gpu`), so `--gpus=1` jobs schedule. Prints `export SLURM_CONF=...`.
#   down  stops the daemons started by `up` (by the pids recorded in DIR) and removes the fake devices.
#
# Needs root (the daemons, apt-get, mknod). Without root or without apt-get it exits 77 ("skip") with one line
# saying why, unless CI=true, where that is an error (exit 1).
set -euo pipefail

cmd=${1:-}; dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then echo "usage: $0 up|down DIR" >&2; exit 2; fi
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
CTLD_PORT=${SLURM_TEST_CTLD_PORT:-16817}; SLURMD_PORT=${SLURM_TEST_SLURMD_PORT:-16818}

skip() {
    if [[ "${CI:-}" == "true" ]]; then echo "cluster.sh: cannot run a SLURM cluster here: $*" >&2; exit 1; fi
    echo "cluster.sh: SKIP: $*" >&2; exit 77
}

stop_pid() {   # stop the daemon whose pid is in file $1 (ours only), waiting for it to go
    local f=$1 pid
    [[ -s "$f" ]] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

down() {
    if [[ -f "$dir/slurm.conf" ]]; then   # jobs still running would outlive slurmd: cancel them first
        SLURM_CONF="$dir/slurm.conf" timeout 10 scancel --full --quiet --user root 2>/dev/null || true
    fi
    stop_pid "$dir/slurmd.pid"; stop_pid "$dir/slurmctld.pid"; stop_pid "$dir/munged.pid"
    rm -f /dev/fakegpu0 /dev/fakegpu1
    for f in slurm.conf gres.conf; do   # our links only
        if [[ -L /etc/slurm/$f && $(readlink /etc/slurm/$f) == "$dir/$f" ]]; then rm -f /etc/slurm/$f; fi
    done
}

if [[ "$cmd" == down ]]; then down; exit 0; fi
[[ "$cmd" == up ]] || { echo "usage: $0 up|down DIR" >&2; exit 2; }

[[ $(id -u) -eq 0 ]] || skip "needs root (to install and start munged, slurmctld, slurmd)"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || skip "slurm-wlm and munge are not installed and there is no apt-get"
    echo "cluster.sh: installing slurm-wlm and munge" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge) >"$dir/apt.log" 2>&1 \
        || skip "apt-get install slurm-wlm munge failed (see $dir/apt.log)"
fi
down   # a previous cluster in DIR, if any
ours() {   # /etc/slurm/$1 is absent, or a link left by this script (to a test cluster's file, or dangling)
    local f=/etc/slurm/$1
    [[ ! -e $f && ! -L $f ]] && return 0
    [[ -L $f ]] || return 1
    [[ ! -e $f ]] || grep -q "^ClusterName=lrcbert-test" "$(dirname "$(readlink "$f")")/slurm.conf" 2>/dev/null
}
for f in slurm.conf gres.conf; do
    ours $f || skip "/etc/slurm/$f exists (a real SLURM installation?); not touching it"
done

mkdir -p "$dir/spool/ctld" "$dir/spool/d" "$dir/log" "$dir/munge"
chmod 700 "$dir/munge"
[[ -s "$dir/munge/munge.key" ]] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
munged --force --num-threads=10 --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
       --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"

for i in 0 1; do [[ -e /dev/fakegpu$i ]] || mknod /dev/fakegpu$i c 1 3; done
node=$(hostname -s)
read -r cpus mem < <(slurmd -C | awk '/^NodeName/ {for (i = 1; i <= NF; i++) {split($i, kv, "=");
    if (kv[1] == "CPUs") c = kv[2]; if (kv[1] == "RealMemory") m = kv[2]}; print c, m}')
cat > "$dir/slurm.conf" <<EOF
ClusterName=lrcbert-test
SlurmctldHost=$node
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock,cred_expire=10
CredType=cred/munge
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MessageTimeout=10
KillWait=10
GresTypes=gpu
NodeName=$node CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
cat > "$dir/gres.conf" <<EOF
NodeName=$node Name=gpu File=/dev/fakegpu[0-1]
EOF
mkdir -p /etc/slurm
for f in slurm.conf gres.conf; do ln -sfn "$dir/$f" /etc/slurm/$f; done
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -q '^idle'; then
        echo "cluster.sh: node $node up: $cpus CPUs, $mem MB, 2 fake GPUs (SLURM_CONF=$SLURM_CONF)" >&2
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 1
done
echo "cluster.sh: the node did not become idle in 60 s; logs in $dir/log:" >&2
tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
exit 1
