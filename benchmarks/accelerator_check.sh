#!/usr/bin/env bash
# One short, prepared check on an accelerator machine (issue 11), run from the source tree:
#
#   bash benchmarks/accelerator_check.sh OUT [WHEELS]
#
# The machine is expected to have JAX (with CUDA or TPU support), Flax and Optax, possibly at
# other versions than setup.cfg pins, and no network. Python packages the check imports but the
# machine lacks are installed from WHEELS (a directory of wheels, `pip install --no-index`;
# `bash benchmarks/accelerator_wheels.sh WHEELS PYTHON_VERSION` fills one where there is
# network). Nothing here needs RDKit or tblite. Writes into OUT:
#
#   environment.json                  devices, versions, what was installed from WHEELS
#   train_step_b${BATCH}_float32.json  `benchmarks.train_step` at the paper config, float32
#   train_step_b${BATCH}_bfloat16.json the same in bfloat16
#   train/                            a short training run of configs/cpu_small.py (all stages,
#                                     TRAIN_STEPS steps each) on the embedded subset; its
#                                     metrics.jsonl per stage
#   *.log                             each command's stderr
#
# Knobs (environment): BATCH (64), CONFIG (configs/qm9s.py), FAST_STEPS (100), TRAIN_CONFIG
# (configs/cpu_small.py), TRAIN_STEPS (300), STEP_TIMEOUT (seconds per benchmark, 240),
# TRAIN_TIMEOUT (seconds for the training run, 300). Any failing or timed-out command fails the
# check (exit status non-zero) after writing what it has. A CPU dry run with tiny sizes:
#   BATCH=2 CONFIG=configs/test.py FAST_STEPS=12 TRAIN_CONFIG=configs/test.py TRAIN_STEPS=3 \
#     bash benchmarks/accelerator_check.sh /tmp/acc
set -euo pipefail
OUT="${1:?usage: accelerator_check.sh OUT [WHEELS]}"
WHEELS="${2:-}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BATCH="${BATCH:-64}"
CONFIG="${CONFIG:-configs/qm9s.py}"
FAST_STEPS="${FAST_STEPS:-100}"
TRAIN_CONFIG="${TRAIN_CONFIG:-configs/cpu_small.py}"
TRAIN_STEPS="${TRAIN_STEPS:-300}"
STEP_TIMEOUT="${STEP_TIMEOUT:-240}"
TRAIN_TIMEOUT="${TRAIN_TIMEOUT:-300}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$REPO"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
START=$SECONDS

# Modules the check imports, with the distribution that provides each.
NEEDED="ml_collections:ml-collections absl:absl-py jraph:jraph msgpack:msgpack tqdm:tqdm
grain:grain array_record:array-record etils:etils orbax.checkpoint:orbax-checkpoint"
installed=()
for pair in $NEEDED; do
  module="${pair%%:*}" dist="${pair##*:}"
  if ! "$PY" -c "import $module" 2>/dev/null; then
    if [ -z "$WHEELS" ]; then
      echo "accelerator_check: error: python module '$module' is missing; pass a WHEELS" \
        "directory holding $dist (benchmarks/accelerator_wheels.sh makes one)" >&2
      exit 2
    fi
    "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" "$dist"
    installed+=("$dist")
  fi
done

"$PY" - "$OUT/environment.json" "${installed[@]}" <<'EOF'
import json, platform, sys
import flax, jax, optax
devices = jax.devices()
info = {
    "backend": jax.default_backend(),
    "devices": [d.device_kind for d in devices],
    "python": platform.python_version(),
    "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
    "installed_from_wheels": sys.argv[2:],
}
with open(sys.argv[1], "w") as f:
    json.dump(info, f, indent=2)
print(json.dumps(info))
EOF

run() {  # run NAME COMMAND...: stdout's last line -> OUT/NAME.json, stderr -> OUT/NAME.log
  local name="$1" t0=$SECONDS
  shift
  echo "accelerator_check: $name"
  timeout "$STEP_TIMEOUT" "$@" 2>"$OUT/$name.log" | tail -n 1 >"$OUT/$name.json.tmp"
  mv "$OUT/$name.json.tmp" "$OUT/$name.json"
  echo "accelerator_check: $name ok ($((SECONDS - t0)) s): $(cut -c1-300 "$OUT/$name.json")"
}

for dtype in float32 bfloat16; do
  run "train_step_b${BATCH}_${dtype}" "$PY" -m benchmarks.train_step --config="$CONFIG" \
    --batch="$BATCH" --dtype="$dtype" --fast_steps="$FAST_STEPS" --repeats=3
done

echo "accelerator_check: training $TRAIN_CONFIG, $TRAIN_STEPS steps per stage"
t0=$SECONDS
timeout "$TRAIN_TIMEOUT" "$PY" -m irgeodiff_jax.train --config="$TRAIN_CONFIG:stage=all" \
  --workdir="$OUT/train" --config.training.num_steps="$TRAIN_STEPS" \
  --config.training.progress_bar=False 2>"$OUT/train.log"
echo "accelerator_check: training ok ($((SECONDS - t0)) s)"
ls "$OUT"/train/*/metrics.jsonl
echo "accelerator_check: all ok ($((SECONDS - START)) s); results in $OUT"
