#!/usr/bin/env bash
# Installs the Debian packages fathom needs, only those missing (idempotent; no-op when present).
# libeigen3-dev is not needed by any header today (the CMake config does not ask for it); it stays
# installed for lens-training work to come. xtl-dev satisfies Debian's xsimd CMake config.
# openmpi-bin + libopenmpi-dev: the optional MPI build of eval (-DFATHOM_MPI=ON) and its test.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libeigen3-dev libxsimd-dev doctest-dev
      libbenchmark-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libutf8proc-dev unzip
      clang libclang-rt-14-dev libomp-dev xtl-dev openmpi-bin libopenmpi-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fathom: installing ${missing[*]}" >&2
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
