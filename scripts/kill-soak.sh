#!/usr/bin/env bash
# Kill soak of fathom's long runs (docs/reliability.md): an evaluation (MMLU subset, generate
# scoring, two policies) and a tuned-lens training run on stories260K are each SIGKILLed at random
# moments at least KILLS times and resumed after every kill; the final results file and lens
# checkpoint must equal those of an uninterrupted run (results: every field but the timing field
# "seconds"; lens: byte for byte). Then output to a full disk and to a read-only folder must fail
# with a clear error (exit 1, "error: FILE: ...") and leave the existing results intact, and the
# interrupted work must complete once space is back.
#
# Usage: scripts/kill-soak.sh BUILD_DIR [KILLS] [WORK_DIR] [SEED]
#   BUILD_DIR  holds examples/eval and examples/train_lens (cmake -DFATHOM_BUILD_EXAMPLES=ON)
#   KILLS      kills per run, at least (default 20)
#   WORK_DIR   scratch folder (default BUILD_DIR/kill-soak; emptied first)
#   SEED       seed of the kill times (default 1)
# The full-disk and read-only cases mount small tmpfs folders, which needs root; without it they
# use a file-size limit (ulimit -f) and a folder without write permission instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:?usage: kill-soak.sh BUILD_DIR [KILLS] [WORK_DIR] [SEED]}" && pwd)
kills=${2:-20}
work=${3:-$build/kill-soak}
seed=${4:-1}
shared=${FATHOM_SHARED:-$(cd "$root/.." && pwd)/shared}
for p in "$build/examples/eval" "$build/examples/train_lens"; do
  [[ -x $p ]] || { echo "kill-soak: $p not built (cmake --build $build --target eval train_lens)" >&2; exit 1; }
done
mkdir -p "$work"
work=$(cd "$work" && pwd)
exec python3 - "$build" "$kills" "$work" "$seed" "$shared" <<'PY'
import json, os, random, shutil, signal, subprocess, sys, time

build, kills, work, seed, shared = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
rng = random.Random(seed)
env = dict(os.environ, OMP_NUM_THREADS="1", FATHOM_SHARED=shared)
model = f"{shared}/models/stories260K/stories260K.bin"
failures = []

def log(*a):
    print(*a, flush=True)

def check(ok, what):
    log(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        failures.append(what)

def eval_cmd(out):
    return [f"{build}/examples/eval", "-m", model, "--task", "mmlu", "--subjects", "abstract_algebra",
            "--limit", "100", "--scoring", "generate", "--policies", "full,lac:0.8", "--threads", "1",
            "--no-progress", "--out", out, "--svg", out + ".svg"]

def lens_cmd(out, resume):
    return ([f"{build}/examples/train_lens", "-m", model, "--text",
             f"{shared}/data/tinystories/TinyStories-valid-head30KB.txt", "--out", out, "--steps", "200",
             "--seqs-per-step", "4", "--seq-len", "64", "--checkpoint-every", "1", "-t", "1"] +
            (["--resume"] if resume else []))

def run(cmd, limit=None):
    """Runs cmd to its end; returns (exit code, stderr+stdout text, seconds)."""
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=limit)
    return p.returncode, p.stdout, time.monotonic() - t0

def soak(name, make_cmd, progress, total):
    """Starts make_cmd(), SIGKILLs it at a random moment, restarts, until a run ends by itself with
    at least `kills` kills behind it. Kill times are drawn so that about 1.5 x kills runs share the
    remaining work: uniform in [0, 2 x (seconds per unit of work) x (units left) / (kills left x 1.5)]
    after the program's start-up time."""
    n_kills, runs, per_unit, startup = 0, 0, None, 0.0
    t_all = time.monotonic()
    while True:
        before = progress()
        cmd = make_cmd()
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        runs += 1
        left = max(total - before, 1)
        kills_left = max(kills - n_kills, 1)
        unit = per_unit if per_unit else 0.05
        window = 2 * unit * left / (kills_left * 1.5)
        delay = startup + rng.uniform(0, max(window, 0.01))
        try:
            err = p.communicate(timeout=delay)[1]
            code = p.returncode
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.communicate()
            code = None
        elapsed = time.monotonic() - t0
        after = progress()
        if code is None:
            n_kills += 1
            if after > before and elapsed > startup:  # learn the pace from runs that got somewhere
                pace = (elapsed - startup) / (after - before)
                per_unit = pace if per_unit is None else 0.7 * per_unit + 0.3 * pace
            elif after == before:
                startup = min(startup + 0.02, 2.0)  # killed before any work: start-up is longer
            continue
        if code != 0:
            check(False, f"{name}: run {runs} exited {code}: {err.strip()[-400:]}")
            return n_kills, runs
        if n_kills >= kills:
            log(f"  {name}: {n_kills} kills, {runs} runs, {time.monotonic() - t_all:.1f} s")
            return n_kills, runs
        # Finished before enough kills: start the soak over (more, shorter pieces next time).
        log(f"  {name}: completed after only {n_kills} kills; starting over")
        return None

# ---- evaluation ------------------------------------------------------------------------------

def results_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    return data.split(b"\n")[:-1]  # complete lines only

def comparable(lines):
    """The results without the timing field, as canonical JSON lines."""
    out = []
    for i, l in enumerate(lines):
        j = json.loads(l)
        if i > 0:
            j.pop("seconds", None)
        out.append(json.dumps(j, sort_keys=True))
    return out

log(f"kill soak: {kills} kills per run, seed {seed}, work {work}")
for d in ("eval", "lens"):
    shutil.rmtree(os.path.join(work, d), ignore_errors=True)
    os.makedirs(os.path.join(work, d))
ref = os.path.join(work, "eval", "reference.jsonl")
code, text, secs = run(eval_cmd(ref))
check(code == 0, f"eval reference run ({secs:.1f} s)")
ref_lines = results_lines(ref)
total = len(ref_lines) - 1
log(f"eval: reference {total} results in {secs:.1f} s")

soaked = os.path.join(work, "eval", "soaked.jsonl")
result = None
while result is None:
    if os.path.exists(soaked):
        os.remove(soaked)
    result = soak("eval", lambda: eval_cmd(soaked), lambda: max(len(results_lines(soaked)) - 1, 0), total)
eval_kills, eval_runs = result
same = comparable(results_lines(soaked)) == comparable(ref_lines)
check(same, f"eval: results after {eval_kills} kills equal the uninterrupted run ({total} results, all fields but 'seconds')")
check(open(soaked, "rb").read().endswith(b"\n"), "eval: the results file ends with a complete line")

# ---- lens training ---------------------------------------------------------------------------

lens_files = ["config.json", "params.safetensors", "optimizer.safetensors", "train_state.json", "heldout_kl.csv"]
ref_dir = os.path.join(work, "lens", "reference")
code, text, secs = run(lens_cmd(ref_dir, False))
check(code == 0, f"lens reference run ({secs:.1f} s)")
log(f"lens: reference 200 steps in {secs:.1f} s")

def lens_step(d):
    try:
        with open(os.path.join(d, "train_state.json")) as f:
            return json.load(f)["step"]
    except (OSError, ValueError, KeyError):
        return 0

soak_dir = os.path.join(work, "lens", "soaked")
result = None
while result is None:
    shutil.rmtree(soak_dir, ignore_errors=True)
    result = soak("lens", lambda: lens_cmd(soak_dir, os.path.exists(os.path.join(soak_dir, "train_state.json"))),
                  lambda: lens_step(soak_dir), 200)
lens_kills, lens_runs = result

def same_files(a, b, names):
    bad = [n for n in names if not (os.path.exists(os.path.join(a, n)) and os.path.exists(os.path.join(b, n)) and
                                   open(os.path.join(a, n), "rb").read() == open(os.path.join(b, n), "rb").read())]
    return bad

bad = same_files(ref_dir, soak_dir, lens_files)
check(not bad, f"lens: checkpoint after {lens_kills} kills byte-identical to the uninterrupted run ({', '.join(lens_files)})"
      + (f"; differ: {bad}" if bad else ""))
check(not os.path.exists(os.path.join(soak_dir, ".staging")) and not os.path.exists(os.path.join(soak_dir, ".ready")),
      "lens: no staging folder left behind")

# ---- full disk and read-only folder ------------------------------------------------------------

def can_mount():
    return os.geteuid() == 0 and shutil.which("mount") is not None

mounts = []
def tmpfs(path, kib):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", path], check=True)
    mounts.append(path)

def fill(path, leave_bytes):
    """Fills the file system at path up to leave_bytes free."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(path, "filler"), "wb") as f:
        f.write(b"\0" * max(free - leave_bytes, 0))

def readonly(path):
    subprocess.run(["mount", "-o", "remount,ro", path], check=True)

def clear_error(code, text, what):
    # The message may follow a progress bar on the same line.
    line = [l[l.index("error: "):] for l in text.splitlines() if "error: " in l]
    check(code == 1 and bool(line), f"{what}: exit {code}, {line[-1] if line else 'no error line: ' + text.strip()[-200:]}")

try:
    if not can_mount():
        log("full disk / read-only: not root, cannot mount tmpfs; skipped (run as root)")
        failures.append("full disk / read-only cases skipped")
    else:
        # Evaluation, full disk: half the results exist, a few hundred bytes are free.
        d = os.path.join(work, "disk-eval")
        tmpfs(d, 256)
        out = os.path.join(d, "r.jsonl")
        half = b"".join(l + b"\n" for l in ref_lines[: 1 + total // 2])
        open(out, "wb").write(half)
        fill(d, 0)  # only the slack of the file's last page is left
        code, text, _ = run(eval_cmd(out))
        clear_error(code, text, "eval, full disk")
        now = open(out, "rb").read()
        check(now.startswith(half), "eval, full disk: the results already there are intact")
        kept = results_lines(out)
        check(comparable(kept) == comparable(ref_lines[: len(kept)]),
              f"eval, full disk: every complete line on disk is right ({len(kept) - 1} results, {len(kept) - 1 - total // 2} new)")
        os.remove(os.path.join(d, "filler"))
        code, text, _ = run(eval_cmd(out))
        check(code == 0 and comparable(results_lines(out)) == comparable(ref_lines),
              "eval, full disk: with space back the run resumes and ends equal to the uninterrupted run")
        # Evaluation, read-only folder (with a half-written last line to cut, and without).
        open(out, "wb").write(half + ref_lines[1 + total // 2][:40])
        readonly(d)
        code, text, _ = run(eval_cmd(out))
        clear_error(code, text, "eval, read-only folder (half-written last line)")
        check(open(out, "rb").read() == half + ref_lines[1 + total // 2][:40], "eval, read-only folder: file unchanged")

        # Lens training, full disk: a checkpoint at some step exists; no room for the next one.
        d = os.path.join(work, "disk-lens")
        tmpfs(d, 1024)
        out = os.path.join(d, "lens")
        p = subprocess.Popen(lens_cmd(out, False), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while lens_step(out) < 20 and p.poll() is None:
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait()
        # A kill after a checkpoint's commit point leaves its files in .ready/ (moved on resume).
        def current(n):
            r = os.path.join(out, ".ready", n)
            return open(r if os.path.exists(r) else os.path.join(out, n), "rb").read()
        before = {n: current(n) for n in lens_files[:4]}
        fill(d, 64 * 1024)  # less than the 170 KB a checkpoint takes, more than data.safetensors needs
        code, text, _ = run(lens_cmd(out, True))
        clear_error(code, text, f"lens, full disk (checkpoint at step {json.loads(before['train_state.json'])['step']})")
        check(all(open(os.path.join(out, n), "rb").read() == b for n, b in before.items()),
              "lens, full disk: the checkpoint already there is intact")
        check(not os.path.exists(os.path.join(out, ".staging")), "lens, full disk: the partial checkpoint was removed")
        readonly(d)
        code, text, _ = run(lens_cmd(out, True))
        clear_error(code, text, "lens, read-only folder")
        check(all(open(os.path.join(out, n), "rb").read() == b for n, b in before.items()),
              "lens, read-only folder: the checkpoint is intact")
        subprocess.run(["mount", "-o", "remount,rw", d], check=True)
        os.remove(os.path.join(d, "filler"))
        code, text, _ = run(lens_cmd(out, True))
        bad = same_files(ref_dir, out, lens_files)
        check(code == 0 and not bad, "lens, full disk: with space back training resumes and ends byte-identical")
finally:
    for m in reversed(mounts):
        subprocess.run(["umount", m])

log("")
log(f"summary: eval {eval_kills} kills / {eval_runs} runs, lens {lens_kills} kills / {lens_runs} runs, "
    f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
PY
