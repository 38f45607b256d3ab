# Shared by perf_suite.sh and gpu_checks.sh (sourced, not run): where results go, and `step NAME TIMEOUT_S COMMAND...`,
# which runs one measurement with a time limit, logs it to $OUT/log.txt, and packs every run's small files
# (json/md/png; no traces or event files) into $OUT/runs.tar.gz as soon as it ends, so a cut-off call keeps them.
OUT=${OUT:-suite-out}
RUNS=${RUNS:-$OUT/runs}
mkdir -p "$OUT" "$RUNS"
LOG="$OUT/log.txt"
PY=${PYTHON:-python3}
export PYTHONPATH=${PYTHONPATH:-.} PYTHONUNBUFFERED=1

pack() {
  (cd "$RUNS" && find . \( -name '*.json' ! -name '*.pt.trace.json' -o -name '*.md' -o -name '*.png' \) -print0 \
     | tar -czf "$OUT/runs.tar.gz.tmp" --null -T - && mv "$OUT/runs.tar.gz.tmp" "$OUT/runs.tar.gz")
}

step() {  # step NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name: $*" | tee -a "$LOG"
  local t0=$(date +%s)
  timeout "$limit" "$@" >>"$LOG" 2>&1
  echo "=== $name: exit $? after $(( $(date +%s) - t0 )) s" | tee -a "$LOG"
  pack
}

{ nvidia-smi -L; $PY -c "import torch, lightning; print(torch.__version__, lightning.__version__, torch.cuda.get_device_name())"; } >>"$LOG" 2>&1
