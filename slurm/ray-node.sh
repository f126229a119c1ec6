#!/usr/bin/env bash
# Start one Ray node (head or worker) of a SLURM job's private cluster and block.
#
#   ray-node.sh head   <temp-dir> <num-cpus> <node-ip> <gcs-port>
#   ray-node.sh worker <temp-dir> <num-cpus|auto> <head-ip:port>
#
# Called by ray-cluster.sbatch: directly on the first node (head), through
# `srun --nodes=1 --ntasks=1 -w <node>` on the others. It `exec`s `ray start --block`, so the
# PID SLURM (or the batch script) knows IS the Ray launcher, and SIGTERM to it stops the
# node's Ray processes (ray start --block shuts its children down on exit).
#
# Every port is explicit and probed free on this node: several Rays can share a machine
# (other jobs, other tests) and Ray's fixed defaults (52365, 10001, 8265 which Ray probes even with the dashboard off) would collide.
# Environment: TRIPWIRE_RAY_OBJECT_STORE_BYTES (default 1 GiB), RAY_AUTH_MODE (inherited).
set -euo pipefail

die() { echo "ray-node: $*" >&2; exit 2; }

role=${1:-}
[[ $role == head || $role == worker ]] || die "first argument must be 'head' or 'worker', got '${role}'"
[[ $# -ge 4 ]] || die "usage: ray-node.sh head TEMP_DIR NUM_CPUS NODE_IP GCS_PORT | worker TEMP_DIR NUM_CPUS HEAD_ADDRESS"
temp_dir=$2
num_cpus=$3
[[ $num_cpus == auto ]] && num_cpus=${SLURM_CPUS_ON_NODE:-1}  # a worker's own node
[[ $num_cpus =~ ^[0-9]+$ ]] || die "num-cpus must be a whole number, got '${num_cpus}'"
store_bytes=${TRIPWIRE_RAY_OBJECT_STORE_BYTES:-1073741824}
[[ $store_bytes =~ ^[0-9]+$ ]] || die "TRIPWIRE_RAY_OBJECT_STORE_BYTES must be bytes, got '${store_bytes}'"

# Eight ports held open together while probing, so they are distinct; the window between
# closing them and Ray binding them is the only race left.
read -r p_nm p_om p_agent p_agent_grpc p_metrics p_rtenv p_client p_dash < <(python - <<'EOF'
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

args=(--temp-dir "$temp_dir" --num-cpus "$num_cpus" --object-store-memory "$store_bytes"
      --node-manager-port "$p_nm" --object-manager-port "$p_om"
      --dashboard-agent-listen-port "$p_agent" --dashboard-agent-grpc-port "$p_agent_grpc"
      --metrics-export-port "$p_metrics" --runtime-env-agent-port "$p_rtenv"
      --disable-usage-stats --block)

if [[ $role == head ]]; then
    [[ $# -eq 5 ]] || die "head needs TEMP_DIR NUM_CPUS NODE_IP GCS_PORT"
    exec ray start --head --node-ip-address "$4" --port "$5" --ray-client-server-port "$p_client" \
        --include-dashboard false --dashboard-port "$p_dash" "${args[@]}"
else
    [[ $# -eq 4 ]] || die "worker needs TEMP_DIR NUM_CPUS HEAD_ADDRESS"
    exec ray start --address "$4" "${args[@]}"
fi
