#!/usr/bin/env bash
# Fan the same training command out to every worker of a Cloud TPU VM pod slice.
#   bash launch/tpu_pod.sh TPU_NAME ZONE -- --config=configs/qm9s.py:stage=all --workdir=gs://BUCKET/run
# The repository must already be present at the same path on every worker (e.g. git clone via a
# prior `--worker=all` ssh). jax.distributed discovers the pod topology by itself.
set -euo pipefail
NAME="${1:?usage: tpu_pod.sh TPU_NAME ZONE -- TRAIN_ARGS...}"
ZONE="${2:?usage: tpu_pod.sh TPU_NAME ZONE -- TRAIN_ARGS...}"
shift 2
[[ "${1:-}" == "--" ]] && shift
REPO_DIR="${REPO_DIR:-~/irgeodiff-jax}"
printf -v ARGS '%q ' "$@"
CMD="cd $REPO_DIR && IRGEODIFF_EXTRA=tpu bash launch/run_on_host.sh python -m irgeodiff_jax.train $ARGS"
echo "[tpu_pod] $CMD" >&2
gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command "$CMD"
