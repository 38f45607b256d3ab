"""What a run of several fresh processes (a sweep, ``--repeat N``, ``--accelerator cpu,gpu``) keeps and says when a
signal stops it.

Each setting that ran to its end keeps its own folder, status ``complete``; the one under way keeps what its process
saved (status ``incomplete``, figures over the steps it timed), or nothing when it had not started measuring; the
ones after it never ran. A repeated run's results.json and report.md are over the repeats that ran ("1 of 5 repeats
ran"). A sweep still gets its table and figure over the points that ran, marked interrupted (gpt2_lightning.profile.sweep).
The console says which folder holds what, so nothing reads as more (or less) finished than it is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpt2_lightning.profile.settings import ProfileConfig
from gpt2_lightning.profile.sweep_settings import swept_value


def _counted(data: dict[str, Any]) -> int:
    """The counted steps of the experiment a signal cut short (0 when it timed none)."""
    cut = [r for r in data.get("experiments", {}).values() if isinstance(r, dict) and r.get("interrupted")]
    return max((s.get("n") or 0 for r in cut for s in (r.get("phases") or {}).values()), default=0)


def state(data: dict[str, Any] | None, cut: bool) -> str:
    """What one setting's folder holds after the stop."""
    from gpt2_lightning.profile.sweep import point_status

    if data is None:
        return "stopped before it measured anything (nothing kept)" if cut else "not run"
    status = point_status(data)
    if status == "interrupted":
        n = _counted(data)
        return ("interrupted, marked incomplete: " + (f"its figures are over the {n} counted step(s) before the signal"
                                                      if n else "it timed no counted step"))
    if status in ("complete", "failed"):
        return status
    return f"{status}, marked incomplete"


def after_interrupt(e: BaseException, configs: list[ProfileConfig], run_dirs: list[Path], run_dir: Path,
                    sweep_key: str | None, say: Callable[..., None]) -> None:
    """Write what a stopped run of fresh processes still owes (a sweep's table and figure) and say what each folder
    holds. ``e.progress`` is set by gpt2_lightning.profile.repeats; without it the run was one process, which saved
    itself (gpt2_lightning.profile.run)."""
    progress = getattr(e, "progress", None)
    if progress is None:
        say(f"profile.py: interrupted by {e}; what was measured is in {run_dir} (marked incomplete)", file=sys.stderr)
        return
    results, at, repeat = progress["results"], progress["index"], configs[0].repeat
    where = [f"{sweep_key}={swept_value(configs[at], sweep_key)}" if sweep_key else
             (run_dirs[at].name if len(configs) > 1 else ""), f"repeat {progress['repeat']}/{repeat}" if repeat > 1
             else ""]
    during = " ".join(w for w in where if w)
    lines = [f"profile.py: interrupted by {e}" + (f" during {during}" if during else "")
             + f"; what was measured is in {run_dir}:"]
    if len(configs) == 1:
        data = results[0]
        if data is not None and repeat > 1:
            from gpt2_lightning.report.render import format_summary
            from gpt2_lightning.report.repeat_summary import ran_text

            say(format_summary(data))
            lines.append(f"  {ran_text(data)}: results.json and report.md hold their figures (marked incomplete)")
        else:
            lines.append(f"  {state(data, cut=True)}")
    else:
        names = [f"{sweep_key}={swept_value(c, sweep_key)}" if sweep_key else d.name for c, d in zip(configs, run_dirs)]
        not_run = [n for j, (n, data) in enumerate(zip(names, results)) if data is None and j != at]
        for j, (d, data) in enumerate(zip(run_dirs, results)):
            if data is not None or j == at:
                lines.append(f"  {d.name}/: {state(data, cut=j == at)}")
        if not_run:
            lines.append(f"  not run: {', '.join(not_run)}")
    if sweep_key is not None:
        lines += _write_sweep(e, configs, results, run_dir, sweep_key, say)
    say("\n".join(lines), file=sys.stderr)


def _write_sweep(e: BaseException, configs: list[ProfileConfig], results: list[dict[str, Any] | None],
                 run_dir: Path, key: str, say: Callable[..., None]) -> list[str]:
    """The sweep's table and figure over the points that measured anything, marked interrupted; the console lines
    that say where they are."""
    from gpt2_lightning.profile.sweep import point_status, write_sweep

    runs = [(swept_value(c, key), r) for c, r in zip(configs, results) if r is not None]
    if not runs:
        return ["  no point measured anything: no sweep table"]
    stopped = {"by": str(e), "points": len(configs),
               "not_run": [swept_value(c, key) for c, r in zip(configs, results) if r is None]}
    try:
        table, files = write_sweep(key, runs, run_dir, stopped=stopped)
    except OSError as err:  # a full disk: each point's results.json is already written
        from gpt2_lightning.report.atomic_files import write_failure

        return [f"  {write_failure(err.filename or run_dir, err)}"]
    say(table)
    ran = sum(1 for _, r in runs if point_status(r) != "interrupted")  # the points drawn
    return [f"  sweep table over the {ran} point(s) that ran, marked interrupted: "
            + ", ".join(str(f) for f in files)]
