#!/usr/bin/env bash
# Per-host wrapper: create/activate a venv idempotently, install the project, mark the process as
# part of a multi-host job, then run the given command unchanged.
#   bash launch/run_on_host.sh python -m irgeodiff_jax.train --config=... --workdir=...
# Env: IRGEODIFF_VENV (default ~/irgeodiff-venv), IRGEODIFF_EXTRA (pip extra: tpu | cuda12 | "").
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${IRGEODIFF_VENV:-$HOME/irgeodiff-venv}"
EXTRA="${IRGEODIFF_EXTRA:-}"
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
if [[ -n "$EXTRA" ]]; then spec=".[$EXTRA]"; else spec="."; fi
python -m pip install --quiet -e "$spec"
export IRGEODIFF_DISTRIBUTED=1
echo "[run_on_host $(hostname)] $*" >&2
exec "$@"
