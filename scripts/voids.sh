#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the LAC void analysis (examples/voids)
# on the real stories260K model from ../shared. Arguments are passed to `voids` (see --help).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/install-deps.sh"
FATHOM_BUILD_DIR=${FATHOM_BUILD_DIR:-$root/build} bash "$root/scripts/build.sh" \
  -DFATHOM_BUILD_TESTS=OFF -DFATHOM_BUILD_BENCH=OFF -DFATHOM_BUILD_EXAMPLES=ON
mkdir -p "$root/out"
exec "${FATHOM_BUILD_DIR:-$root/build}/examples/voids" --out "$root/out/voids" "$@"
