#!/usr/bin/env bash
# The GPU measurements behind docs/performance.md, in one go (about 7 minutes on one H100).
#
#   OUT=/tmp/perf bash scripts/perf_suite.sh
#
# Every step runs even if an earlier one failed; each step's results are packed into $OUT/runs.tar.gz as soon as it
# ends (results.json, report.md, plots, sweep/compare tables; no event files or traces), the console into $OUT/log.txt.
# It leaves $OUT alone and nothing else: log.txt, steps.tsv, runs.tar.gz and runs/ (the full runs, traces and
# TensorBoard event files included, often GBs); once runs.tar.gz is kept, `rm -rf "$OUT"`. The last line says so.
set -u
OUT=${OUT:-perf-out}
. "$(dirname "$0")/_suite.sh"

P="$PY scripts/profile.py --accelerator gpu --out $RUNS"
step gpu-tests 120 $PY -m pytest -q -p no:cacheprovider -m gpu tests/callbacks/test_no_sync.py
step gpt2-fp32 120 $P --model gpt2 --run-name gpt2-fp32
step gpt2-bf16 120 $P --model gpt2 --precision bf16-mixed --run-name gpt2-bf16
step sizes-bf16 240 $P --precision bf16-mixed --sweep model=gpt2,gpt2-medium,gpt2-large,gpt2-xl --run-name sizes-bf16
step overhead-bf16-b16 150 $PY scripts/bench_overhead.py --accelerator gpu --model gpt2 --precision bf16-mixed \
  --batch-size 16 --rounds 5 --steps 20 --out "$RUNS/overhead-bf16-b16.json"
for b in 16 32; do
  step compiled-bf16-b$b 180 $P --model gpt2 --precision bf16-mixed --compile --experiments train --steps 10 \
    --batch-size $b --run-name compiled-bf16-b$b
done
step xl-init-on-cpu 150 $P --model gpt2-xl --experiments init --init-on cpu --warmup-steps 0 --steps 2 \
  --run-name xl-init-on-cpu
grep -E "^(===|.*ratio|.*tokens/s)" "$LOG" | tail -40
echo "left: $OUT (log.txt, steps.tsv, runs.tar.gz; runs/ with traces and event files: $(du -sh "$RUNS" | cut -f1)); \
rm -rf \"$OUT\" once runs.tar.gz is kept"
