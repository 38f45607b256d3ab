#!/usr/bin/env python
"""How well comparisons tell runs apart on this machine, from real reruns: identical settings and planted slowdowns.

1. Identical pairs: the same profile.py command with --repeat R, run twice in a row (as a CI job measures the main
   branch, then the change), --pairs times. Counts the pairs that compare.py's judgement calls "beyond noise" (any
   of train and inference tokens/s), and the largest ratio between the first repeats of a pair: what two single runs
   of identical settings can differ by (the minimum effect for runs without repeats).
2. Planted slowdowns: a baseline run, then the same with --add-delay-ms D (a sleep in every forward pass: a known
   delay inside the timed work), where D is the slowdown times the identical runs' median train step; --planted
   pairs per slowdown. Counts the pairs whose train tokens/s is called slower, beyond noise.
3. The smallest slowdown told apart in at least 9 of 10 pairs: the gate's floor (gpt2_lightning/report/gate.py).

Every run is a real profile.py process; each pair's runs follow each other, so the machine's drift is in the figures.
On a machine others are using, the figures are an upper bound on the noise. Writes noise_check.json and every run
under --out. Time: (2 x pairs + 2 x planted x slowdowns) x repeat processes of the profile command.
"""

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)
from gpt2_lightning.report.noise import BUSY_WAITING_SHARE

ROOT = Path(__file__).resolve().parents[1]
# a small run whose steps are short enough that the between-process noise dominates: the hard case. --threads 1:
# on a shared 2-core machine, torch's 2 intra-op threads make runs 3-10x slower and far noisier (README)
DEFAULT_PROFILE = ("--accelerator cpu --model tiny --batch-size 2 --seq-len 64 --warmup-steps 2 --steps 20 "
                   "--experiments inference,train --no-energy --no-diagnose --threads 1")
FIGURES = ("train: tokens/s", "inference: tokens/s")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="a new directory for the runs and noise_check.json")
    p.add_argument("--repeat", type=int, default=5, help="repeats per run (default 5)")
    p.add_argument("--pairs", type=int, default=20, help="pairs of identical runs (default 20)")
    p.add_argument("--planted", type=int, default=10, help="pairs per planted slowdown (default 10)")
    p.add_argument("--slowdowns", default="10,20,30,50", help="planted slowdowns of the train step, %% (default "
                   "10,20,30,50)")
    p.add_argument("--profile-args", default=DEFAULT_PROFILE, help=f"the profile.py settings (default: "
                   f"{DEFAULT_PROFILE})")
    p.add_argument("--rejudge", action="store_true", help="measure nothing: judge the runs already in --out again "
                   "with today's code")
    return p.parse_args(argv)


class Runner:
    def __init__(self, out: Path, profile_args: list[str], repeat: int, total: int):
        self.out, self.args, self.repeat, self.total, self.done = out, profile_args, repeat, total, 0
        self.log = open(out / "runs.log", "a", encoding="utf-8")
        self.started = time.monotonic()

    def run(self, name: str, *extra: str) -> dict:
        """One profile.py run with --repeat; its results."""
        from gpt2_lightning.report.results import RunResults

        cmd = [sys.executable, str(ROOT / "scripts" / "profile.py"), *self.args, "--repeat", str(self.repeat),
               "--out", str(self.out / "runs"), "--run-name", name, *extra]
        self.log.write("$ " + " ".join(cmd) + "\n")
        self.log.flush()
        proc = subprocess.run(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.done += self.repeat
        elapsed = time.monotonic() - self.started
        print(f"[{self.done}/{self.total} processes, {elapsed / 60:.1f} min] {name}"
              + (f" (exit {proc.returncode})" if proc.returncode else ""), flush=True)
        return RunResults.load(self.out / "runs" / name / "results.json").to_dict()


def verdicts(a: dict, b: dict) -> dict:
    """compare.py's judgement of b against a, per figure: (ratio, its range, verdict)."""
    from gpt2_lightning.report.results import compare

    rows = {r["key"]: r for r in compare([a, b])}  # by key: labels gain "(rank 0)" with several processes
    return {f: (rows[f]["speedups"][1], rows[f]["speedup_ranges"][1], rows[f]["noise"][1], rows[f]["notes"][1])
            for f in FIGURES if f in rows}


def first_repeat(data: dict, exp: str) -> float | None:
    """The train step (or forward pass) median of a run's first repeat: what a single run would have read."""
    from gpt2_lightning.report.noise import TIMED_PHASE

    reps = data.get("repeats") or []
    phases = (reps[0]["experiments"].get(exp) or {}).get("phases", {}) if reps else {}
    return (phases.get(TIMED_PHASE[exp]) or {}).get("median_ms")


def load(out: Path, name: str) -> dict:
    """A run's results, its repeats summarised again by today's code (gpt2_lightning.report.repeat_summary)."""
    from gpt2_lightning.report.repeat_summary import merge_repeats
    from gpt2_lightning.report.results import RunResults

    run = out / "runs" / name
    repeats = sorted(run.glob("repeat-*/results.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not repeats:
        return RunResults.load(run / "results.json").to_dict()
    return merge_repeats([RunResults.load(p).to_dict() for p in repeats], run, len(repeats))


def measure(out: Path, args, slowdowns: list[float]) -> None:
    """Every run: the identical pairs, then for each slowdown its pairs (a baseline, then the delayed run)."""
    total = (2 * args.pairs + 2 * args.planted * len(slowdowns)) * args.repeat
    print(f"{total} profile processes: {args.pairs} identical pairs and {args.planted} pairs for each of "
          f"{', '.join(f'{s:g}%' for s in slowdowns)}, --repeat {args.repeat}", flush=True)
    runner = Runner(out, args.profile_args.split(), args.repeat, total)
    steps, quiet = [], []  # every repeat's train step median, and those of repeats no other work disturbed
    for i in range(1, args.pairs + 1):
        for side in "ab":
            block = runner.run(f"same-{i}-{side}")["experiments"]["train"]["repeats"]
            for m, w in zip(block["medians_ms"], block.get("waiting_shares") or [None] * len(block["medians_ms"])):
                steps.append(m)
                if w is not None and w < BUSY_WAITING_SHARE:
                    quiet.append(m)
    # a planted slowdown is a fraction of the machine's own step, not of one inflated by other work
    step_ms = statistics.median(quiet if len(quiet) >= 3 else steps)
    print(f"train step: median {step_ms:.2f} ms over {len(quiet) if len(quiet) >= 3 else len(steps)} "
          f"{'undisturbed ' if len(quiet) >= 3 else ''}repeats", flush=True)
    for s in slowdowns:
        for j in range(1, args.planted + 1):
            runner.run(f"slow{s:g}-{j}-a")
            runner.run(f"slow{s:g}-{j}-b", "--add-delay-ms", f"{step_ms * s / 100:.3f}")


def judge_runs(out: Path) -> dict:
    """Judge every pair under out/runs with today's code (so a changed statistic can be tried on the same reruns)."""
    names = sorted(p.name for p in (out / "runs").iterdir() if (p / "results.json").exists())
    report: dict = {"identical": [], "planted": {}}
    for name in (n for n in names if n.startswith("same-") and n.endswith("-a")):
        other = name[:-1] + "b"
        if other not in names:
            continue
        a, b = load(out, name), load(out, other)
        report["identical"].append({"pair": name[:-2], "verdicts": verdicts(a, b),
                                    "first_repeats_ms": {exp: (first_repeat(a, exp), first_repeat(b, exp))
                                                         for exp in ("train", "inference")}})
    for name in (n for n in names if n.startswith("slow") and n.endswith("-b")):
        base = name[:-1] + "a"
        if base not in names:
            continue
        a, b = load(out, base), load(out, name)
        level = name[len("slow"):].split("-")[0]
        planted = report["planted"].setdefault(level, {"delay_ms": b["config"].get("add_delay_ms"), "pairs": []})
        v = verdicts(a, b)["train: tokens/s"]
        planted["pairs"].append({"pair": name[:-2], "ratio": v[0], "range": v[1], "verdict": v[2], "note": v[3]})
    for planted in report["planted"].values():
        planted["told_apart"] = sum(p["verdict"] == "beyond noise" and p["ratio"] < 1 for p in planted["pairs"])
    return report


def summary(report: dict) -> list[str]:
    identical = report["identical"]
    called = [p["pair"] for p in identical if any(v[2] == "beyond noise" for v in p["verdicts"].values())]
    unjudged = [p["pair"] for p in identical if all(v[2] is None for v in p["verdicts"].values())]
    ratios = [max(x, y) / min(x, y) for p in identical for x, y in p["first_repeats_ms"].values() if x and y]
    lines = [f"identical settings called beyond noise: {len(called)} of {len(identical)} pairs"
             + (f" ({', '.join(called)})" if called else "")
             + (f"; not judged: {len(unjudged)} ({', '.join(unjudged)})" if unjudged else "")]
    if ratios:
        lines.append(f"single runs (each pair's first repeats) differ by up to {max(ratios):.2f}x")
    levels = sorted(report["planted"], key=float)
    for level in levels:
        r = report["planted"][level]
        notes = sorted({p["note"] for p in r["pairs"] if p["verdict"] is None and p["note"]})
        lines.append(f"planted {level}% slowdown ({r['delay_ms']:.2f} ms per forward pass): called slower beyond noise "
                     f"in {r['told_apart']} of {len(r['pairs'])}" + (f" (not judged: {'; '.join(notes)})" if notes
                                                                      else ""))
    told = {lv: report["planted"][lv]["told_apart"] >= math.ceil(0.9 * len(report["planted"][lv]["pairs"]))
            for lv in levels}
    # the smallest slowdown told apart 9 times in 10, with every larger one tried told apart as well
    smallest = min((float(lv) for lv in levels if all(told[t] for t in levels if float(t) >= float(lv))),
                   default=None)
    report["identical_called_different"] = len(called)
    report["single_runs_largest_ratio"] = max(ratios, default=None)
    report["smallest_told_apart_pct"] = smallest
    lines.append(f"smallest slowdown told apart in 9 of 10: {f'{smallest:g}%' if smallest else 'none of those tried'}")
    return lines


def main(argv=None) -> int:
    args = parse(argv)
    out = Path(args.out)
    if args.rejudge:
        if not (out / "runs").is_dir():
            print(f"noise_check.py: error: --rejudge: {out / 'runs'} holds no runs", file=sys.stderr)
            return 2
    else:
        if out.exists():
            print(f"noise_check.py: error: --out {out} exists; give a new directory (or --rejudge it)",
                  file=sys.stderr)
            return 2
        out.mkdir(parents=True)
        measure(out, args, [float(s) for s in args.slowdowns.split(",") if s.strip()])
    report = judge_runs(out)
    lines = summary(report)
    report |= {"profile_args": args.profile_args, "repeat": args.repeat}
    (out / "noise_check.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("\n" + "\n".join(lines) + f"\nwrote {out / 'noise_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
