#!/usr/bin/env bash
# Generic multi-node GPU launch (no SLURM): run this on every node with the same arguments.
#   JAX_COORDINATOR_ADDRESS=10.0.0.1:1234 NUM_PROCESSES=2 PROCESS_ID=0 \
#     bash launch/gpu_multinode.sh --config=configs/qm9s.py:stage=all --workdir=/shared/run
set -euo pipefail
: "${JAX_COORDINATOR_ADDRESS:?set to host:port of process 0}"
: "${NUM_PROCESSES:?set to the number of processes (nodes)}"
: "${PROCESS_ID:?set to this process index, 0..NUM_PROCESSES-1}"
if ! [[ "$NUM_PROCESSES" =~ ^[0-9]+$ && "$PROCESS_ID" =~ ^[0-9]+$ ]] \
   || (( PROCESS_ID >= NUM_PROCESSES )); then
  echo "gpu_multinode: PROCESS_ID=$PROCESS_ID must be an integer in [0, NUM_PROCESSES=$NUM_PROCESSES)" >&2
  exit 2
fi
if [[ "$JAX_COORDINATOR_ADDRESS" != *:* ]]; then
  echo "gpu_multinode: JAX_COORDINATOR_ADDRESS=$JAX_COORDINATOR_ADDRESS must be host:port" >&2
  exit 2
fi
export JAX_COORDINATOR_ADDRESS NUM_PROCESSES PROCESS_ID
echo "[gpu_multinode] process $PROCESS_ID/$NUM_PROCESSES coordinator $JAX_COORDINATOR_ADDRESS: $*" >&2
IRGEODIFF_EXTRA=cuda12 exec bash "$(dirname "$0")/run_on_host.sh" python -m irgeodiff_jax.train "$@"
