"""Where the time goes in a torch.profiler trace: scripts/analyze_trace.py (gpt2-analyze-trace) TRACE [--step-ms MS]

Reads any torch.profiler (Kineto) Chrome trace, plain or .gz, from this tool or from a plain torch.profiler loop:
GPU busy time per profiled step, kernel time by category, the top kernels, the per-module breakdown when the trace
has module ranges, and with --step-ms (the UN-profiled median step of the same run: the profiler slows the host, not
the kernels) the busy share and a verdict. A trace without GPU events is analysed by CPU operators' self time. Plain
Python: runs without torch. Exit codes: 0 success, 2 not a trace (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys

from gpt2_lightning.analysis.trace_analysis import TraceError, analyze_trace
from gpt2_lightning.analysis.verdict import diagnose
from gpt2_lightning.cli_args import prog_name
from gpt2_lightning.report.diagnosis import format_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog_name("scripts/analyze_trace.py"), description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("trace", help="a *.pt.trace.json or *.pt.trace.json.gz file")
    parser.add_argument("--step-ms", type=float, default=None, metavar="MS",
                        help="the un-profiled median step (or forward pass) of the same run, in ms: adds the busy "
                             "share and the verdict")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    def error(message):
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)

    parser.error = error
    args = parser.parse_args(argv)
    if args.step_ms is not None and args.step_ms <= 0:
        error(f"--step-ms {args.step_ms}: must be a positive number of milliseconds")

    try:
        result = diagnose(analyze_trace(args.trace), step_ms=args.step_ms)
    except TraceError as e:
        error(str(e))
    print(json.dumps(result, indent=1) if args.json else format_text(result))
    return 0
