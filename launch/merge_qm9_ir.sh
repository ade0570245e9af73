#!/usr/bin/env bash
# Merge the array-task outputs of launch/build_qm9_ir_slurm.sbatch into $QM9_IR_OUT/merged
# (shard-00000.npz ... in selection order, combined failures.jsonl, build_info.json), then print
# the dataset description. Fails with a one-line error if any shard is missing or unreadable.
#   QM9_IR_OUT=/shared/qm9_ir bash launch/merge_qm9_ir.sh
set -euo pipefail
: "${QM9_IR_OUT:?set QM9_IR_OUT to the directory given to build_qm9_ir_slurm.sbatch}"
cd "$(dirname "$0")/.."
PY="${IRGEODIFF_PYTHON:-python}"
shopt -s nullglob
PARTS=("$QM9_IR_OUT"/parts/task-*)
if (( ${#PARTS[@]} == 0 )); then
  echo "merge_qm9_ir: no task directories under $QM9_IR_OUT/parts" >&2
  exit 2
fi
"$PY" -m data_pipeline.merge_shards --out "$QM9_IR_OUT/merged" "${PARTS[@]}"
"$PY" -m data_pipeline.describe --source qm9_ir --data_dir "$QM9_IR_OUT/merged"
