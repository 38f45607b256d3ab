#!/usr/bin/env python
"""Where the GPU's time goes in a torch.profiler trace: python scripts/analyze_trace.py TRACE [--step-ms MS] [--json]

Reads any torch.profiler (Kineto) Chrome trace, plain or .gz, from this tool or from a plain torch.profiler loop:
GPU busy time per profiled step, kernel time by category, the top kernels, and with --step-ms (the UN-profiled median
step of the same run: the profiler slows the host, not the kernels) the busy share and a verdict. A trace without GPU
events is analysed by CPU operators' self time. Exit codes: 0 success, 2 not a trace (one line on stderr).
"""

import argparse
import json
import sys
import types
from pathlib import Path

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)


def _load_without_torch() -> None:
    """The analysis is plain Python: import its modules without gpt2_lightning/__init__.py, which imports torch and
    Lightning (seconds of start-up, and a machine that only reads traces need not have them)."""
    if "gpt2_lightning" not in sys.modules:
        package = types.ModuleType("gpt2_lightning")
        package.__path__ = [str(Path(_bootstrap.__file__).resolve().parent.parent / "gpt2_lightning")]
        sys.modules["gpt2_lightning"] = package


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="analyze_trace.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("trace", help="a *.pt.trace.json or *.pt.trace.json.gz file")
    parser.add_argument("--step-ms", type=float, default=None, metavar="MS",
                        help="the un-profiled median step (or forward pass) of the same run, in ms: adds the busy "
                             "share and the verdict")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    def error(message):
        print(f"analyze_trace.py: error: {message}", file=sys.stderr)
        sys.exit(2)

    parser.error = error
    args = parser.parse_args(argv)
    if args.step_ms is not None and args.step_ms <= 0:
        error(f"--step-ms {args.step_ms}: must be a positive number of milliseconds")
    _load_without_torch()
    from gpt2_lightning.analysis.verdict import diagnose
    from gpt2_lightning.report.diagnosis import format_text
    from gpt2_lightning.analysis.trace_analysis import TraceError, analyze_trace

    try:
        result = diagnose(analyze_trace(args.trace), step_ms=args.step_ms)
    except TraceError as e:
        error(str(e))
    print(json.dumps(result, indent=1) if args.json else format_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
