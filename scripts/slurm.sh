#!/usr/bin/env bash
# A real Slurm cluster on this machine, for running Sluice on Slurm and testing it: Debian's
# `slurm-wlm` and `munge` (installed when missing), one `slurmctld` and N `slurmd` nodes.
# Each node runs in its own network and UTS namespace, with its own host name (node1,
# node2, ...) and address (10.77.0.11, 10.77.0.12, ...), joined by a bridge to the
# controller at 10.77.0.1; all of them share this machine's file systems, as cluster nodes
# share a home over NFS or Lustre. Needs root (or sudo) for the namespaces; adds the node
# names to /etc/hosts. Job completions are kept in a file (`jobcomp/filetxt`), which
# `sacct -c` reads; there is no accounting database.
#
#   eval "$(scripts/slurm.sh start [NODES])"   # NODES defaults to 2; waits until every
#                                    # node is idle; prints `export SLURM_CONF=...`
#   scripts/slurm.sh status          # sinfo, and exit 1 when the cluster is not up
#   scripts/slurm.sh stop            # stops the daemons, removes the namespaces and bridge
#   scripts/slurm.sh kill-node N     # node N dies: every process in its namespace killed
#   scripts/slurm.sh start-node N    # node N boots again; waits until it is idle
#
# Everything the cluster writes (slurm.conf, state, spool, logs) is under
# SLUICE_SLURM_DIR (default /tmp/sluice-slurm). Clients find the cluster with
#   export SLURM_CONF=$SLUICE_SLURM_DIR/slurm.conf
# Each start is a new cluster: jobs, job ids and completions of an earlier one are gone.
# The bridge, the namespaces and the ports are the machine's, so one cluster runs at a
# time; /run/sluice-slurm names the folder of the one that does.
set -euo pipefail

dir=$(realpath -m "${SLUICE_SLURM_DIR:-/tmp/sluice-slurm}")
conf=$dir/slurm.conf
owner=/run/sluice-slurm
bridge=sluice-slurm0
subnet=10.77.0
controller=$subnet.1
sudo=$([[ $(id -u) == 0 ]] || echo sudo)

usage() {
    echo "usage: scripts/slurm.sh start [NODES] | status | stop | kill-node N | start-node N" >&2
    exit 2
}

fail() {
    echo "error: $*" >&2
    exit 1
}

# The folder of the cluster this machine runs, if any.
running_dir() {
    [[ -f $owner ]] && cat "$owner" || true
}

# Whether `pid` (from a pid file) is still the Slurm daemon it was written for.
is_daemon() {
    local pid=$1
    [[ $pid =~ ^[0-9]+$ && $pid -gt 1 ]] || return 1
    grep -qE '^slurm(ctld|d)$' "/proc/$pid/comm" 2>/dev/null
}

install_missing() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    command -v ip >/dev/null || missing+=(iproute2)
    command -v unshare >/dev/null || missing+=(util-linux)
    if [[ ${#missing[@]} -gt 0 ]]; then
        echo "installing ${missing[*]} (Debian)..." >&2
        $sudo apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

# munged for the whole machine: its socket is where every Slurm daemon and client looks.
start_munge() {
    if [[ -S /run/munge/munge.socket.2 ]] && munge -n </dev/null >/dev/null 2>&1; then
        return
    fi
    $sudo mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        $sudo dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    $sudo chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    $sudo chmod 0700 /etc/munge /var/log/munge /var/lib/munge
    $sudo chmod 0400 /etc/munge/munge.key
    $sudo chmod 0755 /run/munge
    $sudo runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n </dev/null >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "error: munged did not start (see /var/log/munge/munged.log)" >&2
    exit 1
}

write_conf() {
    local nodes=$1 cpus memory per_cpu
    cpus=$(nproc)
    # Each node offers the machine's CPUs and a share of its memory (MiB); a job that asks
    # for no memory gets at most 512 MiB per CPU, and never more than a node has.
    memory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / (nodes + 1)))
    per_cpu=$((memory / cpus < 512 ? memory / cpus : 512))
    rm -rf "$dir/state" "$dir/spool" "$dir/jobcomp.log"
    mkdir -p "$dir/state" "$dir/log" "$dir/spool" || fail "cannot write under $dir"
    cat >"$conf" <<EOF
# Written by scripts/slurm.sh: a test cluster of $nodes nodes on one machine.
ClusterName=sluice
SlurmctldHost=$(hostname -s)($controller)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$per_cpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
ReturnToService=2
SlurmctldTimeout=30
# A node that stops answering is down, and its jobs end NODE_FAIL, within 10 s.
SlurmdTimeout=10
InactiveLimit=0
KillWait=5
MinJobAge=600
EOF
    for i in $(seq "$nodes"); do
        echo "NodeName=node$i NodeAddr=$subnet.$((10 + i)) NodeHostname=node$i CPUs=$cpus RealMemory=$memory State=UNKNOWN" >>"$conf"
    done
    # LLN: each job goes to the least loaded node, so jobs that run at once spread out.
    echo "PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP LLN=YES" >>"$conf"
}

start_network() {
    local nodes=$1
    if ! ip link show "$bridge" >/dev/null 2>&1; then
        $sudo ip link add "$bridge" type bridge
        $sudo ip addr add "$controller/24" dev "$bridge"
    fi
    $sudo ip link set "$bridge" up
    for i in $(seq "$nodes"); do
        local ns=sluice-node$i
        ip netns list | grep -qw "$ns" && continue
        $sudo ip netns add "$ns"
        $sudo ip link add "slv$i" type veth peer name eth0 netns "$ns"
        $sudo ip link set "slv$i" master "$bridge" up
        $sudo ip -n "$ns" addr add "$subnet.$((10 + i))/24" dev eth0
        $sudo ip -n "$ns" link set eth0 up
        $sudo ip -n "$ns" link set lo up
        $sudo ip -n "$ns" route add default via "$controller"
    done
}

start() {
    local nodes=${1:-2}
    [[ $nodes =~ ^[1-9][0-9]?$ ]] || usage
    [[ $dir != *[[:space:]]* ]] || fail "SLUICE_SLURM_DIR must not contain spaces (slurm.conf cannot hold them): $dir"
    local running
    running=$(running_dir)
    if [[ -n $running && $running != "$dir" ]]; then
        fail "a Slurm cluster under $running runs on this machine; stop it first (SLUICE_SLURM_DIR=$running scripts/slurm.sh stop)"
    fi
    if [[ -n $running ]] && status >/dev/null 2>&1; then
        local up
        up=$(SLURM_CONF=$conf sinfo -h -N -o %N | sort -u | wc -l)
        [[ $up == "$nodes" ]] || fail "the Slurm cluster under $dir runs $up nodes; stop it to start $nodes"
        echo "the Slurm cluster under $dir is already up ($nodes nodes)" >&2
        return
    fi
    stop >/dev/null 2>&1 || true
    install_missing
    start_munge
    write_conf "$nodes"
    echo "$dir" | $sudo tee "$owner" >/dev/null
    start_network "$nodes"
    # Node names resolve to their addresses for every daemon and client.
    for i in $(seq "$nodes"); do
        grep -q "^$subnet.$((10 + i)) node$i\$" /etc/hosts ||
            echo "$subnet.$((10 + i)) node$i" | $sudo tee -a /etc/hosts >/dev/null
    done
    # -c: a new cluster, without the jobs an earlier one saved.
    $sudo slurmctld -f "$conf" -c
    for i in $(seq "$nodes"); do
        start_slurmd "$i"
    done
    local idle
    for _ in $(seq 150); do
        idle=$(SLURM_CONF=$conf sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)
        if [[ $idle == "$nodes" ]]; then
            echo "Slurm cluster up: $nodes nodes; export SLURM_CONF=$conf" >&2
            return
        fi
        sleep 0.2
    done
    echo "error: the Slurm nodes did not become idle; logs under $dir/log" >&2
    SLURM_CONF=$conf sinfo -N -l >&2 || true
    exit 1
}

# slurmd of node `i`, in its node's network namespace (entered without `ip netns exec`,
# which would remount /sys and hide the cgroup file system slurmd needs) and under its own
# host name; -b tells the controller the node (re)booted, so it returns to service.
start_slurmd() {
    local i=$1
    $sudo nsenter --net=/run/netns/sluice-node$i unshare --uts -- \
        sh -c "hostname node$i && exec slurmd -f '$conf' -b" \
        >>"$dir/log/slurmd-node$i.out" 2>&1
}

# The cluster this machine runs must be the one under $dir.
require_running() {
    [[ $(running_dir) == "$dir" && -f $conf ]] || fail "no Slurm cluster runs under $dir"
}

kill_node() {
    local i=$1
    require_running
    ip netns list | grep -qw "sluice-node$i" || fail "the cluster has no node$i"
    local pids
    pids=$($sudo ip netns pids "sluice-node$i")
    [[ -n $pids ]] && $sudo kill -9 $pids 2>/dev/null || true
    rm -f "$dir/slurmd-node$i.pid"
    echo "node$i killed" >&2
}

start_node() {
    local i=$1
    require_running
    ip netns list | grep -qw "sluice-node$i" || fail "the cluster has no node$i"
    if ! is_daemon "$(cat "$dir/slurmd-node$i.pid" 2>/dev/null || true)"; then
        start_slurmd "$i"
    fi
    for _ in $(seq 300); do
        if SLURM_CONF=$conf sinfo -h -n "node$i" -t idle,mix,alloc -o %N 2>/dev/null | grep -qx "node$i"; then
            echo "node$i up" >&2
            return
        fi
        sleep 0.2
    done
    fail "node$i did not return to service; logs under $dir/log"
}

status() {
    local pid
    pid=$(cat "$dir/slurmctld.pid" 2>/dev/null || true)
    if [[ $(running_dir) != "$dir" || ! -f $conf ]] || ! is_daemon "$pid"; then
        echo "no Slurm cluster runs under $dir" >&2
        return 1
    fi
    SLURM_CONF=$conf sinfo -N -l
    # Every node answers: none down or not responding.
    ! SLURM_CONF=$conf sinfo -h -N -o %t | grep -qE '\*|down|drain|fail|unk'
}

stop() {
    local running
    running=$(running_dir)
    if [[ -n $running && $running != "$dir" ]]; then
        fail "the Slurm cluster on this machine is the one under $running; stop it with SLUICE_SLURM_DIR=$running"
    fi
    local pids=()
    for file in "$dir"/slurmd-*.pid "$dir/slurmctld.pid"; do
        [[ -f $file ]] || continue
        local pid
        pid=$(cat "$file")
        is_daemon "$pid" && pids+=("$pid")
        rm -f "$file"
    done
    # Job steps (slurmstepd) ignore SIGTERM: whatever runs in a node's namespace is killed.
    for ns in $(ip netns list 2>/dev/null | awk '/^sluice-node[0-9]+/ {print $1}'); do
        pids+=($($sudo ip netns pids "$ns" 2>/dev/null))
    done
    if [[ ${#pids[@]} -gt 0 ]]; then
        $sudo kill "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 30); do
            local alive=0
            for pid in "${pids[@]}"; do
                kill -0 "$pid" 2>/dev/null && alive=1
            done
            [[ $alive == 0 ]] && break
            sleep 0.1
        done
        $sudo kill -9 "${pids[@]}" 2>/dev/null || true
    fi
    for ns in $(ip netns list 2>/dev/null | awk '/^sluice-node[0-9]+/ {print $1}'); do
        $sudo ip netns delete "$ns"
    done
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^slv[0-9]+@/ {sub(/@.*/, "", $2); print $2}'); do
        $sudo ip link delete "$link" 2>/dev/null || true
    done
    if ip link show "$bridge" >/dev/null 2>&1; then
        $sudo ip link delete "$bridge"
    fi
    $sudo rm -f "$owner"
    echo "Slurm cluster under $dir stopped" >&2
}

case "${1:-}:$#" in
start:1 | start:2)
    # Only the line for `eval` on standard output, as scripts/registries.sh does.
    start "${2:-2}" >&2
    echo "export SLURM_CONF=$conf"
    ;;
kill-node:2) [[ $2 =~ ^[1-9][0-9]?$ ]] || usage && kill_node "$2" ;;
start-node:2) [[ $2 =~ ^[1-9][0-9]?$ ]] || usage && start_node "$2" ;;
status:1) status ;;
stop:1) stop ;;
*) usage ;;
esac
