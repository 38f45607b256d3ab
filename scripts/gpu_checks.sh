#!/usr/bin/env bash
# The GPU checks still open for issues 11 (diagnosis), 12 (energy), 13 (no sync in counted steps) and 15 (fp8), in
# one go (about 9 minutes on one H100). Run from the repository root of a plain checkout, nothing installed:
#
#   OUT=/tmp/gpu bash scripts/gpu_checks.sh
#
# torchao for --precision fp8 must be importable (e.g. a wheel for the machine's torch/Python on PYTHONPATH); without
# it the fp8 step is refused with one line and the rest still runs. Every step runs even if an earlier one failed;
# results (json/md/png, no traces or event files) are packed into $OUT/runs.tar.gz after each, the console in
# $OUT/log.txt.
set -u
OUT=${OUT:-gpu-out}
. "$(dirname "$0")/_suite.sh"

P="$PY scripts/profile.py --accelerator gpu --out $RUNS"
# issue 13: any sync inside counted steps is an error; issues 11: planted GPU-bound and host-bound cases
step gpu-tests 180 $PY -m pytest -q -p no:cacheprovider -m gpu tests/
# issue 11: a default run diagnoses itself; its wall time against --no-diagnose (target: at most +10 s)
step gpt2-fp32 150 $P --model gpt2 --run-name gpt2-fp32
step gpt2-bf16 150 $P --model gpt2 --precision bf16-mixed --run-name gpt2-bf16
step gpt2-bf16-nodiag 120 $P --model gpt2 --precision bf16-mixed --no-diagnose --run-name gpt2-bf16-nodiag
# issue 12: energy of eager B8 and compiled B32; step time with and without energy (target: within 1%)
step bf16-noenergy 120 $P --model gpt2 --precision bf16-mixed --experiments train --steps 20 --no-energy --no-diagnose --run-name bf16-noenergy
step bf16-energy 120 $P --model gpt2 --precision bf16-mixed --experiments train --steps 20 --no-diagnose --run-name bf16-energy
step compiled-b32 180 $P --model gpt2 --precision bf16-mixed --compile --batch-size 32 --experiments train --steps 10 --run-name compiled-b32
step cpu-gpu 240 $PY scripts/profile.py --accelerator cpu,gpu --model gpt2 --steps 2 --warmup-steps 1 --target-tokens 10B --price-per-hour 3 --out $RUNS --run-name cpu-gpu
# issue 15: float8 against bf16 (compiled)
step fp8-gpt2 240 $P --model gpt2 --precision fp8 --compile --batch-size 32 --experiments train --steps 10 --run-name fp8-gpt2
grep -E "^(===|.*verdict|.*tokens/s|.*J/token|.*busy)" "$LOG" | tail -60
