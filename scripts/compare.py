#!/usr/bin/env python
"""Compare two or more runs side by side: python scripts/compare.py runs/cpu/results.json runs/gpu/results.json

Prints the settings that differ between the runs, warnings (a profiled run against an unprofiled one, different
experiments, an unstable run), then one table: each figure with its p10-p90 spread, each later run's speed-up over the
first with its range and a noise judgement ("≈ within noise" when the p10-p90 ranges overlap). Writes comparison.md
and comparison.png into --out, by default comparisons/<timestamp>/ under the current directory. Results made on
different machines compare fine: copy one run's directory next to another.
"""

import argparse
import datetime as _dt
import sys
from pathlib import Path

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)
from gpt2_lightning.results import ResultsError


def main(argv=None) -> int:
    from gpt2_lightning.cli_args import HelpFormatter, prog_name, with_suggestion

    prog = prog_name("scripts/compare.py")
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[1],
                                     formatter_class=HelpFormatter)
    parser.add_argument("results", nargs="+", help="results.json files or run directories; the first is the baseline")
    parser.add_argument("--out", default=None, help="directory for comparison.md and comparison.png (default: "
                        "comparisons/<timestamp> in the current directory)")

    def error(message):
        print(f"{prog}: error: {with_suggestion(parser, message)}", file=sys.stderr)
        sys.exit(2)

    parser.error = error
    args = parser.parse_args(argv)
    if len(args.results) < 2:
        error("give at least two results files to compare")
    from gpt2_lightning.compare import labels_for, load_runs, write_comparison

    try:
        runs = load_runs(args.results)
    except ResultsError as e:
        error(str(e))
    out = Path(args.out) if args.out else Path("comparisons") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if not args.out:  # two comparisons in one second get two directories, never one overwritten
        base, n = out, 1
        while out.exists():
            out, n = base.with_name(f"{base.name}-{n}"), n + 1
    try:
        table, files = write_comparison(runs, labels_for(runs, args.results), out)
    except OSError as e:
        error(f"--out {out}: cannot write ({e.strerror or e})")
    print(table)
    print("\n" + "\n".join(f"wrote {f}" for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
