"""Measurements in fresh processes: ``--repeat N``, sweeps and ``--accelerator cpu,gpu``.

A rerun in a new process is what a user's next run is: thread placement, allocator and cache state, the first-use
costs of a process and the machine's other load all change from one process to the next, and the repeats are there
to see how much. Each measurement is one child process (``python -m gpt2_lightning.profile.repeats``) that runs one setting
once and writes its own run directory; a sweep point or an accelerator gets its own process too, so each one's
memory peak is its own (a process's RSS high-water mark only ever rises). Several settings take turns, repeat by
repeat (A B A B ...), so that a drift in the machine's load hits them alike.

The parent forwards SIGINT / SIGTERM to the running child (which saves what it measured, marked incomplete), writes
the run-level results of what was measured, and stops.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpt2_lightning.profile.settings import ProfileConfig
from gpt2_lightning.report.repeat_summary import REPEAT_DIR, merge_repeats

RESULTS_FILE = "results.json"
ROOT = Path(__file__).resolve().parents[2]  # the repository root, on the child's path, so a plain checkout works too


class ChildFailed(RuntimeError):
    """A child process ended without writing any results (it printed why on stderr)."""


def _read(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / RESULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_child(cfg: ProfileConfig, run_dir: Path) -> int:
    """One measurement in a fresh process; its exit code. A signal to this process is passed on to the child, and
    this process waits for it to save its results before re-raising."""
    env = {k: v for k, v in os.environ.items() if k != "GPT2_PROFILE_RUN_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, "-m", "gpt2_lightning.profile.repeats", json.dumps(cfg.to_dict()), str(run_dir)]
    # its own session: a Ctrl-C on the terminal reaches this process alone, which passes it on exactly once
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        return proc.wait()
    except BaseException as e:
        from gpt2_lightning.profile.interrupts import RunInterrupted

        # a child that has written results.json has its handlers up: it saves what it measured and stops. One still
        # starting has nothing to save, and Python's default SIGINT would print a traceback there: SIGTERM ends it
        # quietly
        started = (run_dir / RESULTS_FILE).exists()
        proc.send_signal(e.signum if isinstance(e, RunInterrupted) and started else signal.SIGTERM)
        proc.wait()
        if not started and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise


def measure_in_processes(configs: list[ProfileConfig], run_dirs: list[Path], say: Callable[..., None]
                         ) -> list[dict[str, Any]]:
    """Each config ``--repeat`` times in fresh processes, taking turns; the run-level results of each config.

    With one repeat a child writes straight into the config's run directory; with several, into ``repeat-<i>/``
    below it, and the config's results.json (with report.md) is their summary, rewritten after every repeat."""
    from gpt2_lightning.profile.interrupts import RunInterrupted

    repeat = configs[0].repeat
    measured: list[list[dict[str, Any] | None]] = [[] for _ in configs]
    total, k = repeat * len(configs), 0
    for r in range(1, repeat + 1):
        for i, (cfg, d) in enumerate(zip(configs, run_dirs)):
            k += 1
            target = d / REPEAT_DIR.format(r) if repeat > 1 else d
            target.mkdir(parents=True, exist_ok=True)
            name = " ".join(x for x in (d.name if len(configs) > 1 else "",
                                        f"repeat {r}/{repeat}" if repeat > 1 else "") if x)
            say(f"=== {name} ({k}/{total}, a fresh process) ===", file=sys.stderr, flush=True)
            stop, code = None, None
            try:
                code = run_child(cfg, target)
            except RunInterrupted as e:
                stop = e
            _park(target, repeat)
            data = _keep(measured[i], target, d, repeat, str(stop) if stop else None)  # what the child saved
            if stop is None and code in (128 + signal.SIGINT, 128 + signal.SIGTERM):  # stopped by someone else
                stop = RunInterrupted(code - 128)
            if stop is not None:
                # what each setting measured so far, for the sweep table and the console (profile.partial_runs)
                stop.progress = {"index": i, "repeat": r, "cut": data,
                                 "results": [_so_far(m, dd, repeat) for m, dd in zip(measured, run_dirs)]}
                raise stop
            if data is None:
                raise ChildFailed(f"{target}: the measurement ended (exit {code}) without writing {RESULTS_FILE}")
            if repeat > 1:
                say(f"{name}: {repeat_line(data)}", file=sys.stderr, flush=True)
    return [merge_repeats(m, d, repeat) if repeat > 1 else m[0] for m, d in zip(measured, run_dirs)]


def _so_far(measured: list[dict[str, Any] | None], run_dir: Path, repeat: int) -> dict[str, Any] | None:
    """A setting's run-level results over the repeats it has so far; None when none wrote anything."""
    if not any(measured):
        return None
    return merge_repeats(measured, run_dir, repeat) if repeat > 1 else measured[0]


def _park(target: Path, repeat: int) -> None:
    """A repeat's TensorBoard logs leave TensorBoard's run list (the run lists one run per experiment, its summary);
    ``python -m gpt2_lightning.report.tensorboard_logs --show-repeats RUN`` lists them again."""
    if repeat > 1:
        from gpt2_lightning.report.tensorboard_files import park_events

        park_events(target)


def _keep(measured: list[dict[str, Any] | None], target: Path, run_dir: Path, repeat: int,
          interrupted_by: str | None = None) -> dict[str, Any] | None:
    """Read what a child wrote, add it to its config's repeats and, with several, rewrite their summary."""
    data = _read(target)
    measured.append(data)
    if repeat > 1 and any(measured):
        _write_summary(measured, run_dir, repeat, interrupted_by)
    return data


def _write_summary(repeats: list[dict[str, Any] | None], run_dir: Path, asked: int,
                   interrupted_by: str | None = None) -> None:
    from gpt2_lightning.report.results import RunResults
    from gpt2_lightning.report.run_report import write_report

    data = merge_repeats(repeats, run_dir, asked)
    results = RunResults(env=data["env"], config=data["config"], experiments=data["experiments"],
                         status=data["status"], interrupted_by=interrupted_by or data["interrupted_by"],
                         created=data["created"], repeats=data["repeats"])
    results.save(run_dir / RESULTS_FILE)
    write_report(results.to_dict(), run_dir)


def repeat_line(data: dict[str, Any]) -> str:
    """One repeat in one line: each experiment's median (a build, a forward pass, a step)."""
    from gpt2_lightning.report.noise import timed_stats
    from gpt2_lightning.report.formats import fmt_ms

    parts, waits = [], []
    for exp, result in data.get("experiments", {}).items():
        stats = timed_stats(exp, result) if isinstance(result, dict) else None
        parts.append(f"{exp} {fmt_ms(stats['median_ms'])}" if stats else f"{exp} failed")
        waits.append(((result or {}).get("machine") or {}).get("waiting_share") if isinstance(result, dict) else None)
    waited = max((w for w in waits if w is not None), default=None)
    return (", ".join(parts) or "nothing measured") + (
        f" (its threads waited for a core {waited:.0%} of the time)" if waited is not None else "")


def child_main(argv: list[str]) -> int:
    """``python -m gpt2_lightning.profile.repeats CONFIG_JSON RUN_DIR``: one measurement, as profile.py would make it."""
    from gpt2_lightning.cli_args import EXIT_FAILED
    from gpt2_lightning.profile.interrupts import RunInterrupted, interruptible
    from gpt2_lightning.profile.run import run_profile
    from gpt2_lightning.profile.quiet import quiet_lightning

    cfg = ProfileConfig(**json.loads(argv[0]))
    quiet_lightning(cfg.verbose)
    try:
        with interruptible():
            results = run_profile(cfg, Path(argv[1]))
    except RunInterrupted as e:
        return e.exit_code
    return EXIT_FAILED if any("error" in r for r in results.experiments.values()) else 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
