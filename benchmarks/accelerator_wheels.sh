#!/usr/bin/env bash
# Where there is network: wheels of what `accelerator_check.sh` may find missing on an offline
# accelerator machine, for that machine's Python version (e.g. 3.11) on x86-64 Linux.
#
#   bash benchmarks/accelerator_wheels.sh WHEELS PYTHON_VERSION
#
# Versions follow setup.cfg's pins; dependencies come along (binary wheels only).
set -euo pipefail
WHEELS="${1:?usage: accelerator_wheels.sh WHEELS PYTHON_VERSION}"
PYVER="${2:?usage: accelerator_wheels.sh WHEELS PYTHON_VERSION}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
pin() {  # pin DIST: "DIST==VERSION" as setup.cfg's install_requires pins it, else DIST
  grep -iE "^\s*$1\s*==" "$REPO/setup.cfg" | tr -d ' ' || echo "$1"
}
mkdir -p "$WHEELS"
for dist in ml-collections absl-py jraph msgpack tqdm grain array-record etils orbax-checkpoint; do
  python3 -m pip download --quiet --only-binary=:all: --python-version "$PYVER" \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 -d "$WHEELS" "$(pin "$dist")"
done
ls "$WHEELS"
