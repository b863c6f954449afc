#!/usr/bin/env bash
# Fails when a header includes a folder above its own layer (docs/architecture.md):
#   core < kernels < blocks < io < tokenizer < model < lens < depth < report < eval
# Same-folder includes and the umbrella header (fathom.hpp) are always allowed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
declare -A rank=([core]=0 [kernels]=1 [blocks]=2 [io]=3 [tokenizer]=4 [model]=5 [lens]=6 [depth]=7
                 [report]=8 [eval]=9)
bad=0
while IFS= read -r f; do
  rel=${f#"$root/include/fathom/"}
  own=${rel%%/*}
  [[ -n ${rank[$own]:-} ]] || { echo "check-includes: $rel is in no known layer" >&2; bad=1; continue; }
  while IFS=: read -r line inc; do
    dep=${inc%%/*}
    [[ $dep == "$own" ]] && continue
    if [[ -z ${rank[$dep]:-} ]]; then echo "$rel:$line: includes fathom/$inc (no such layer)"; bad=1
    elif (( rank[$dep] > rank[$own] )); then echo "$rel:$line: $own includes $dep (upward): fathom/$inc"; bad=1; fi
  done < <(grep -n '#include "fathom/' "$f" | sed -E 's#^([0-9]+):.*"fathom/([^"]+)".*#\1:\2#')
done < <(find "$root/include/fathom" -mindepth 2 -name '*.hpp' | sort)
((bad == 0)) && echo "check-includes: every include points down"
exit $bad
