#!/usr/bin/env bash
# Install smoke: every user-facing command, run from a directory outside the repository in a venv
# that has only `pip install -e .` (no extras), on configs/test.py with tiny budgets. Catches
# runtime imports of dev-only packages (pytest, chex, ...), imports that work only from the
# repository root (e.g. `configs`), and package data missing from the install.
#
#   bash .ci/smoke.sh [VENV]
#
# VENV: the venv to use; created fresh (`pip install -e .`, no extras) when it does not exist yet.
# Default: a new one in a temporary directory. Any import error or non-zero exit fails.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
VENV="${1:-$WORK/venv}"
unset PYTHONPATH
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$REPO"
fi
PY="$VENV/bin/python"
export JAX_COMPILATION_CACHE_DIR="$WORK/jax_cache"  # the CLIs below share their compilations
STEPS=3  # training steps per stage

mkdir "$WORK/cwd"
cd "$WORK/cwd"  # not the repository root: nothing is importable from the working directory
echo "smoke: venv $VENV, working directory $PWD"

step() {  # step NAME COMMAND...: runs and times one command
  local name="$1" t0=$SECONDS
  shift
  echo "smoke: $name"
  "$@"
  echo "smoke: $name ok ($((SECONDS - t0)) s)"
}

# The venv must be a plain install, or the smoke would not catch dev-only imports.
"$PY" - <<'EOF'
import importlib.util as u
import sys

extra = [m for m in ("pytest", "chex", "ruff", "importlinter", "tensorflow") if u.find_spec(m)]
sys.exit(f"smoke venv is not a plain `pip install -e .`: has {extra}" if extra else 0)
EOF

# Every module of the installed packages imports (also those no command below reaches). CLIs that
# define the same absl flag name at import cannot share a process: those import in their own.
step "import every module" "$PY" - <<'EOF'
import importlib
import pkgutil
import subprocess
import sys

from absl import flags

names = []
for top in ("irgeodiff_jax", "data_pipeline", "configs"):
    package = importlib.import_module(top)
    names.append(top)
    names += [m.name for m in pkgutil.walk_packages(package.__path__, top + ".")]
alone = []
for name in names:
    try:
        importlib.import_module(name)
    except flags.DuplicateFlagError:
        alone.append(name)
for name in alone:
    subprocess.run([sys.executable, "-c", f"import {name}"], check=True)
print(f"{len(names)} modules imported ({len(alone)} in their own process: {alone})")
EOF

step "data_pipeline.describe" "$PY" -m data_pipeline.describe
step "summary" "$PY" -m irgeodiff_jax.summary --config="$REPO/configs/test.py"

QS="$WORK/quickstart"
step "train (stage=all, $STEPS steps per stage)" "$PY" -m irgeodiff_jax.train \
  --config="$REPO/configs/test.py:stage=all" --workdir="$QS/train" \
  --config.training.num_steps="$STEPS"

step "sample" "$PY" -m irgeodiff_jax.sample --workdir="$QS/train" --out="$WORK/samples" \
  --split=test --num_spectra=2 --samples_per_spectrum=2 --sampler=fast --steps=4

step "evaluate" "$PY" -m irgeodiff_jax.evaluate --samples="$WORK/samples" --out="$WORK/eval" \
  --oracle=none --workers=1 --ks=1,2
test -s "$WORK/eval/metrics.json"

# A user's spectrum: two-column CSV (wavenumber, absorbance) covering 450-4050 cm-1.
"$PY" - "$WORK/spectrum.csv" <<'EOF'
import sys

import numpy as np

nu = np.arange(450.0, 4050.5, 2.0)
peaks = [(1050.0, 0.8), (1450.0, 0.3), (2950.0, 1.0), (3350.0, 0.6)]
y = sum(h * np.exp(-0.5 * ((nu - c) / 15.0) ** 2) for c, h in peaks)
np.savetxt(sys.argv[1], np.column_stack([nu, y]), delimiter=",", header="wavenumber,absorbance")
EOF
step "predict" "$PY" -m irgeodiff_jax.predict --workdir="$QS/train" \
  --spectrum="$WORK/spectrum.csv" --kind=absorbance --formula=C2H6O --out="$WORK/predict" \
  --k=2 --sampler=fast --steps=4
test -s "$WORK/predict/candidates.csv"

# Resumes the training above (same config and budget); `configs/test.py` is not a path from this
# directory, so quickstart must find it in the installed `configs` package.
step "quickstart --train" "$PY" -m irgeodiff_jax.quickstart --workdir="$QS" --train \
  --config=configs/test.py --steps_per_stage="$STEPS" --num_spectra=2 --samples_per_spectrum=2 \
  --sampler_steps=4 --oracle_spectra=0
test -s "$QS/eval/metrics.json"

# The model shipped in the installed package: no --workdir anywhere.
step "predict (shipped model)" "$PY" -m irgeodiff_jax.predict \
  --spectrum="$WORK/spectrum.csv" --kind=absorbance --formula=C2H6O --out="$WORK/predict_shipped" \
  --k=2 --sampler=fast --steps=4
test -s "$WORK/predict_shipped/candidates.csv"
step "quickstart (shipped model)" "$PY" -m irgeodiff_jax.quickstart --workdir="$WORK/qs_shipped" \
  --num_spectra=2 --samples_per_spectrum=2 --sampler_steps=4 --oracle_spectra=0
test -s "$WORK/qs_shipped/eval/metrics.json"

cd /
rm -rf "$WORK"  # kept when a step fails; a VENV given as argument lives elsewhere and stays
echo "smoke: all commands ok ($SECONDS s)"
