"""scripts/compare.py: compare runs, and gate a candidate against a baseline (gpt2_lightning.report.gate).

Exit codes: 0 compared (with ``--fail-if-slower``: no regression); 2 bad input (a missing or foreign file, a folder of
runs given as one run, the same run given twice, settings that differ under the gate, a threshold below the floor),
one line on stderr, and with ``--fail-if-slower`` a gated figure slower than PCT that could not be judged (one line
each on stdout, saying why and what to rerun); 3 with ``--fail-if-slower``: a regression beyond noise.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import sys
from pathlib import Path
from typing import Any

from gpt2_lightning.cli_args import EXIT_BAD_INPUT, EXIT_OK, HelpFormatter, prog_name, with_suggestion
from gpt2_lightning.report.gate import (EXIT_CANNOT_GATE, EXIT_REGRESSION, GATE_FLOOR_PCT, GATED, gate_floor,
                                        mismatched, regression_line, regressions, unjudged, unjudged_line)

DESCRIPTION = """Compare two or more runs side by side: the settings that differ, how many warnings there are, then
one table: each figure with its range, each later run's speed-up over the first with its range and a noise judgement;
then the warnings (a profiled run against an unprofiled one, different experiments, an unstable run). Runs made with
--repeat are judged on how their repeats vary (between runs); single runs on their steps' spread, with the between-run
noise unknown. Writes comparison.md and comparison.png into --out, by default comparisons/<timestamp>/ under the
current directory.

As a CI gate: --fail-if-slower PCT exits 3 when a later run is slower than the first by more than PCT and beyond
noise, on time per token or tokens/s (with several processes also the whole job's rate and the slowest rank's step);
exit 0 otherwise. Never green when it cannot judge: a gated figure slower than PCT that could not be judged (too few
repeats or steps, failed repeats, a busy runner) exits 2 with one line each saying what to rerun; so do the same run
given twice and runs whose model, precision, batch shape or device differ."""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, formatter_class=HelpFormatter,
                                     allow_abbrev=False,
                                     epilog="examples:\n  %(prog)s runs/main runs/change\n"
                                            "  %(prog)s runs/main runs/change --fail-if-slower 30 --json")
    parser.add_argument("results", nargs="+", help="results.json files or run directories; the first is the baseline")
    parser.add_argument("--out", default=None, help="directory for comparison.md and comparison.png (default: "
                        "comparisons/<timestamp> in the current directory)")
    parser.add_argument("--fail-if-slower", type=float, default=None, metavar="PCT",
                        help="exit 3 when a later run takes more than PCT%% longer per token than the first (tokens/s "
                        "below 1/(1+PCT/100) of it) and the difference is beyond noise (default: no gate)")
    parser.add_argument("--allow-different-settings", action="store_true",
                        help="gate even though model, precision, batch shape or device differ between the runs")
    parser.add_argument("--allow-below-floor", action="store_true",
                        help="gate with a PCT below the smallest slowdown this machine class tells apart (cpu "
                        f"{GATE_FLOOR_PCT['cpu']:g}%%, cuda {GATE_FLOOR_PCT['cuda']:g}%%)")
    parser.add_argument("--json", action="store_true", help="print the comparison (and the gate's verdict) as JSON "
                        "on stdout for other tools; the files are still written, and named on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    prog = prog_name("scripts/compare.py")
    parser = build_parser(prog)

    def error(message: str) -> None:
        print(f"{prog}: error: {with_suggestion(parser, message)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)

    parser.error = error  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    from gpt2_lightning.report.run_folders import describe_folder

    for p in args.results:  # a sweep or a folder of runs given where one run belongs
        what = describe_folder(Path(p), prog, prog.replace("compare.py", "history.py"))
        if what:
            error(what)
    if len(args.results) < 2:
        error("give at least two results files to compare")
    pct = args.fail_if_slower
    if pct is not None and not (math.isfinite(pct) and pct > 0):
        error(f"--fail-if-slower {pct:g}: must be a positive percentage")

    from gpt2_lightning.report.compare import labels_for, load_runs, settings_table, write_comparison
    from gpt2_lightning.report.results import ResultsError, compare, finite_or_null

    try:
        runs = load_runs(args.results)
    except ResultsError as e:
        error(str(e))
    same = same_run(args.results, runs)
    if same:
        error(f"{same[0]} and {same[1]}: both paths are one run; compare a run with another")
    labels = labels_for(runs, args.results)
    differ = settings_table(runs)[0]
    if pct is not None:
        wrong = mismatched(differ)
        if wrong and not args.allow_different_settings:
            error("--fail-if-slower: the runs differ in " + "; ".join(f"{n} ({' vs '.join(v)})" for n, v in wrong)
                  + ": a ratio between them is not a regression. Pass --allow-different-settings if that is what "
                  "you meant to gate")
        floor = gate_floor(runs)
        if pct < floor and not args.allow_below_floor:
            error(f"--fail-if-slower {pct:g}: below {floor:g}%, the smallest slowdown runs with --repeat 5 tell "
                  "apart on this machine class (docs/comparisons.md#regression-gate-in-ci); a smaller one would pass "
                  "or fail on noise. Pass --allow-below-floor to gate anyway")
    out = Path(args.out) if args.out else Path("comparisons") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if not args.out:  # two comparisons in one second get two directories, never one overwritten
        base, n = out, 1
        while out.exists():
            out, n = base.with_name(f"{base.name}-{n}"), n + 1
    try:
        table, files = write_comparison(runs, labels, out)
    except OSError as e:
        error(f"--out {out}: cannot write ({e.strerror or e})")
    rows = compare(runs)
    found = regressions(rows, labels, pct) if pct is not None else []
    cannot = unjudged(rows, labels, pct, runs) if pct is not None else []
    code = EXIT_REGRESSION if found else EXIT_CANNOT_GATE if cannot else EXIT_OK
    lines = gate_lines(rows, runs, labels, found, cannot, pct) if pct is not None else []
    wrote = "\n".join(f"wrote {f}" for f in files)
    if args.json:
        print(json.dumps(finite_or_null({  # strict JSON: a NaN figure is null
            "runs": [{"label": lab, "path": p, "run_dir": r.get("config", {}).get("run_dir"),
                      "git": r.get("env", {}).get("git")} for lab, p, r in zip(labels, args.results, runs)],
            "settings_differ": dict(differ), "rows": rows,
            "gate": None if pct is None else {"fail_if_slower_pct": pct, "regressions": found, "not_judged": cannot,
                                              "exit_code": code,
                                              "summary": lines[-1]},
            "files": [str(f) for f in files]}), indent=2))
        print(wrote, file=sys.stderr)
    else:
        print(table)
        print("\n" + wrote)
        if lines:
            print("\n" + "\n".join(lines))
    return code


def same_run(paths: list[str], runs: list[dict[str, Any]]) -> tuple[str, str] | None:
    """Two of the paths that name one run: the same results.json however written, or a copy of it."""
    files = [(Path(p) / "results.json" if Path(p).is_dir() else Path(p)).resolve() for p in paths]
    for i in range(len(paths)):
        for j in range(i):
            if files[i] == files[j] or runs[i] == runs[j]:
                return paths[j], paths[i]
    return None


def gate_lines(rows: list[dict[str, Any]], runs: list[dict[str, Any]], labels: list[str],
               found: list[dict[str, Any]], cannot: list[dict[str, Any]], pct: float) -> list[str]:
    """One line per regression, one per gated figure slower than PCT that could not be judged, then the verdict
    (and, for single runs, that the between-run noise is unknown)."""
    from gpt2_lightning.report.compare import value_text

    by_label = {r["label"]: r for r in rows}
    lines = [regression_line(reg, lambda v, row=by_label[reg["figure"]]: value_text(row, v), pct) for reg in found]
    lines += [unjudged_line(item, lambda v, row=by_label[item["figure"]]: value_text(row, v), pct) for item in cannot]
    bases = {b for r in rows if r["key"] in GATED for b in r.get("basis", []) if b}
    if "steps" in bases:
        lines.append("gate: judged without repeats, so the between-run noise is unknown and only large differences "
                     "can count; measure both with --repeat 5")
    if found:
        verdict = f"gate: {len(found)} regression(s) over {pct:g}% beyond noise (exit {EXIT_REGRESSION})"
    elif cannot:
        verdict = (f"gate: cannot gate: {len(cannot)} figure(s) slower than {pct:g}% could not be judged "
                   f"(exit {EXIT_CANNOT_GATE})")
    else:
        verdict = f"gate: no regression over {pct:g}% beyond noise (exit {EXIT_OK})"
    return lines + [verdict]
