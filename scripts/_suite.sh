# Shared by perf_suite.sh and gpu_checks.sh (sourced, not run): where results go, and `step NAME TIMEOUT_S COMMAND...`,
# which runs one measurement with a time limit, logs it to $OUT/log.txt, records its exit code and wall time in
# $OUT/steps.tsv, and packs every run's small files (json/md/png; no traces or event files) into $OUT/runs.tar.gz as
# soon as it ends, so a cut-off call keeps them. With BUDGET_S set, no step runs past the budget's end: its limit is
# cut to what is left, and a step with under 5 s left is skipped.
OUT=${OUT:-suite-out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)  # absolute: pack() runs from inside $RUNS
RUNS=${RUNS:-$OUT/runs}
mkdir -p "$RUNS" && RUNS=$(cd "$RUNS" && pwd)
LOG="$OUT/log.txt"
PY=${PYTHON:-python3}
export PYTHONPATH=${PYTHONPATH:-.} PYTHONUNBUFFERED=1
ENV_TIMEOUT_S=10  # the environment lines at the end
START_S=$(date +%s)
DEADLINE_S=$(( START_S + ${BUDGET_S:-1000000} ))

pack() {
  (cd "$RUNS" && find . \( -name '*.json' ! -name '*.pt.trace.json' -o -name '*.md' -o -name '*.png' \) -print0 \
     | tar -czf "$OUT/runs.tar.gz.tmp" --null -T - && mv "$OUT/runs.tar.gz.tmp" "$OUT/runs.tar.gz")
}

step() {  # step NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2; shift 2
  local left=$(( DEADLINE_S - $(date +%s) ))
  if (( left < limit )); then limit=$left; fi
  if (( limit < 5 )); then
    echo "=== $name: skipped, the ${BUDGET_S:-} s budget is spent" | tee -a "$LOG"
    return
  fi
  echo "=== $name: $*" | tee -a "$LOG"
  local t0
  t0=$(date +%s%N)
  timeout "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  local wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '%s\t%s\t%s\n' "$name" "$rc" "$wall_ms" >>"$OUT/steps.tsv"
  echo "=== $name: exit $rc after $(( wall_ms / 1000 )) s" | tee -a "$LOG"
  pack
}

timeout "$ENV_TIMEOUT_S" bash -c "nvidia-smi -L; $PY -c 'import torch, lightning; print(torch.__version__, \
  lightning.__version__, torch.cuda.get_device_name())'" >>"$LOG" 2>&1
