#!/usr/bin/env python
"""How well comparisons tell runs apart on this machine, from real reruns: identical settings and planted slowdowns.

1. Identical pairs: the same profile.py command with --repeat R, run twice in a row (as a CI job measures the main
   branch, then the change), --pairs times. Counts the pairs that compare.py's judgement calls "beyond noise" (any
   of train and inference tokens/s), and the largest ratio between the first repeats of a pair: what two single runs
   of identical settings can differ by (the minimum effect for runs without repeats).
2. Planted slowdowns: a baseline run, then the same with --add-delay-ms D (a sleep in every forward pass: a known
   delay inside the timed work), where D is the slowdown times the identical runs' median train step; --planted
   pairs per slowdown. Counts the pairs whose train tokens/s is called slower, beyond noise.
3. The smallest slowdown told apart in at least 9 of 10 pairs: the gate's floor (gpt2_lightning/gate.py).

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
    return p.parse_args(argv)


class Runner:
    def __init__(self, out: Path, profile_args: list[str], repeat: int, total: int):
        self.out, self.args, self.repeat, self.total, self.done = out, profile_args, repeat, total, 0
        self.log = open(out / "runs.log", "a", encoding="utf-8")
        self.started = time.monotonic()

    def run(self, name: str, *extra: str) -> dict:
        """One profile.py run with --repeat; its results."""
        from gpt2_lightning.results import RunResults

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
    from gpt2_lightning.results import compare

    rows = {r["label"]: r for r in compare([a, b])}
    return {f: (rows[f]["speedups"][1], rows[f]["speedup_ranges"][1], rows[f]["noise"][1]) for f in FIGURES
            if f in rows}


def first_repeat(data: dict, exp: str) -> float | None:
    """The train step (or forward pass) median of a run's first repeat: what a single run would have read."""
    from gpt2_lightning.noise import TIMED_PHASE

    reps = data.get("repeats") or []
    phases = (reps[0]["experiments"].get(exp) or {}).get("phases", {}) if reps else {}
    return (phases.get(TIMED_PHASE[exp]) or {}).get("median_ms")


def main(argv=None) -> int:
    args = parse(argv)
    out = Path(args.out)
    if out.exists():
        print(f"noise_check.py: error: --out {out} exists; give a new directory", file=sys.stderr)
        return 2
    out.mkdir(parents=True)
    slowdowns = [float(s) for s in args.slowdowns.split(",") if s.strip()]
    total = (2 * args.pairs + 2 * args.planted * len(slowdowns)) * args.repeat
    print(f"{total} profile processes: {args.pairs} identical pairs and {args.planted} pairs for each of "
          f"{', '.join(f'{s:g}%' for s in slowdowns)}, --repeat {args.repeat}", flush=True)
    runner = Runner(out, args.profile_args.split(), args.repeat, total)
    report: dict = {"profile_args": args.profile_args, "repeat": args.repeat, "identical": [], "planted": {}}

    steps = []  # every repeat's train step median: the planted delays are fractions of their median
    for i in range(1, args.pairs + 1):
        a, b = runner.run(f"same-{i}-a"), runner.run(f"same-{i}-b")
        steps += [m for x in (a, b) for m in x["experiments"]["train"]["repeats"]["medians_ms"] if m]
        single = {exp: (first_repeat(a, exp), first_repeat(b, exp)) for exp in ("train", "inference")}
        report["identical"].append({"pair": i, "verdicts": verdicts(a, b), "first_repeats_ms": single})
    called = [p for p in report["identical"] if any(v[2] == "beyond noise" for v in p["verdicts"].values())]
    ratios = [max(x, y) / min(x, y) for p in report["identical"] for x, y in p["first_repeats_ms"].values() if x and y]
    report["identical_called_different"] = len(called)
    report["single_runs_largest_ratio"] = max(ratios, default=None)

    step_ms = statistics.median(steps)
    for s in slowdowns:
        delay = step_ms * s / 100
        pairs = []
        for j in range(1, args.planted + 1):
            a = runner.run(f"slow{s:g}-{j}-a")
            b = runner.run(f"slow{s:g}-{j}-b", "--add-delay-ms", f"{delay:.3f}")
            v = verdicts(a, b)["train: tokens/s"]
            pairs.append({"pair": j, "ratio": v[0], "range": v[1], "verdict": v[2]})
        told = sum(p["verdict"] == "beyond noise" and p["ratio"] < 1 for p in pairs)
        report["planted"][f"{s:g}"] = {"delay_ms": delay, "told_apart": told, "pairs": pairs}
    need = math.ceil(0.9 * args.planted)
    told_by = {s: report["planted"][f"{s:g}"]["told_apart"] for s in slowdowns}
    # the smallest slowdown told apart 9 times in 10, with every larger one tried told apart as well
    smallest = min((s for s in slowdowns if all(told_by[t] >= need for t in slowdowns if t >= s)), default=None)
    report["smallest_told_apart_pct"] = smallest
    (out / "noise_check.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print(f"\nsettings: {args.profile_args} --repeat {args.repeat}; train step median {step_ms:.2f} ms")
    print(f"identical settings called beyond noise: {len(called)} of {args.pairs} pairs"
          + (f" ({', '.join(str(p['pair']) for p in called)})" if called else ""))
    if ratios:
        print(f"single runs (each pair's first repeats) differ by up to {max(ratios):.2f}x")
    for s, r in report["planted"].items():
        print(f"planted {s}% slowdown ({r['delay_ms']:.2f} ms per forward pass): called slower beyond noise in "
              f"{r['told_apart']} of {args.planted}")
    print(f"smallest slowdown told apart in 9 of 10: {f'{smallest:g}%' if smallest else 'none of those tried'}")
    print(f"wrote {out / 'noise_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
