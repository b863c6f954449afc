#!/usr/bin/env python3
"""How a file's page cache lies in physical memory, as a program that maps it sees it.

    python3 bench/compare/page_layout.py /tmp/llama2c/random110M.bin /tmp/cmp/qwen-random-q8_0.gguf

Maps each file read-only, touches every page, then reports from /proc/self/pagemap the runs of
physically consecutive 4 KiB pages (needs root for the frame numbers) and the share of aligned
16 KiB groups that are contiguous, and from /proc/self/smaps how much of the mapping the kernel
maps as 2 MiB pages (FilePmdMapped). A freshly written file (compare.py's `fresh_copy`) comes out
in long runs and huge mappings; one cached hours earlier can come apart, and programs that decode
from a mapped file (llama.cpp, llama2.c's run.c) then slow down (docs/benchmarks.md, "Zen 4: the
peers reading freshly written files").
"""
from __future__ import annotations

import mmap
import os
import re
import statistics
import struct
import sys

PAGE = 4096


def layout(path: str) -> str:
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    n = len(m) // PAGE
    for i in range(n):  # fault every page in
        m[i * PAGE]
    name = os.path.basename(path)
    maps = [line for line in open("/proc/self/maps") if line.rstrip().endswith(name)]
    if not maps:
        return f"{path}: mapping not found"
    lo = int(maps[0].split("-")[0], 16)
    with open("/proc/self/pagemap", "rb") as pm:
        pm.seek(lo // PAGE * 8)
        raw = pm.read(n * 8)
    pfns = [v & ((1 << 55) - 1) for v in struct.unpack(f"<{n}Q", raw)]
    smaps = open("/proc/self/smaps").read()
    blocks = re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", smaps)  # one per mapping
    block = next((b for b in blocks if b.split("\n")[0].endswith(name)), "")
    pmd = re.search(r"FilePmdMapped:\s+(\d+) kB", block)
    huge = f"{int(pmd.group(1)) / 1024:.0f} of {len(m) / 2**20:.0f} MiB mapped as 2 MiB pages" if pmd else "FilePmdMapped: n/a"
    m.close()
    if not any(pfns):
        return f"{path}: {huge}; no frame numbers (pagemap needs root)"
    runs, r = [], 1
    for a, b in zip(pfns, pfns[1:]):
        if b == a + 1:
            r += 1
        else:
            runs.append(r)
            r = 1
    runs.append(r)
    groups = n // 4
    whole = sum(1 for g in range(groups)
                if pfns[4 * g] % 4 == 0 and all(pfns[4 * g + j] == pfns[4 * g] + j for j in range(4)))
    return (f"{path}: {n} pages in {len(runs)} runs (mean {n / len(runs):.1f}, median {statistics.median(runs):.0f} "
            f"pages); aligned 16 KiB groups contiguous {100 * whole / max(groups, 1):.1f} %; {huge}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for p in sys.argv[1:]:
        print(layout(p))
