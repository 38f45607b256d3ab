"""Folders that hold runs rather than being one: a sweep, an ``--accelerator cpu,gpu`` comparison, a folder of runs.

compare.py takes runs; given such a folder it says what the folder is and which command reads it. history.py reads
every run below a folder. Plain Python, no torch.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

RESULTS_FILE = "results.json"


def runs_below(folder: Path) -> list[Path]:
    """Run directories below ``folder`` (any depth), not counting the repeats inside a repeated run nor the points
    and accelerators inside a sweep or comparison whose parent is itself listed."""
    found = []
    for results in sorted(folder.rglob(RESULTS_FILE)):
        run = results.parent
        if run.name.startswith("repeat-") and (run.parent / RESULTS_FILE).exists():
            continue  # a repeat of a run that is listed itself
        found.append(run)
    return found


def describe_folder(path: Path, prog_compare: str, prog_history: str) -> str | None:
    """Why a directory without results.json is not one run, and what to run instead; None when it is not such a
    folder (then it is simply missing its results)."""
    if not path.is_dir() or (path / RESULTS_FILE).exists():
        return None
    sweep = path / "sweep.json"
    if sweep.exists():
        try:
            key = json.loads(sweep.read_text(encoding="utf-8")).get("key", "a setting")
        except (OSError, ValueError, AttributeError):
            key = "a setting"
        points = sorted(p.name for p in path.iterdir() if (p / RESULTS_FILE).exists())
        pair = " ".join(shlex.quote(str(path / p)) for p in points[:2]) or f"{path}/<point> {path}/<point>"
        return (f"{path} is a sweep over {key} (points: {', '.join(points) or 'none finished'}; its table: "
                f"{path / 'sweep.md'}); compare two of its points: {prog_compare} {pair}")
    runs = runs_below(path)
    if not runs and (path / "comparison.md").exists():  # compare.py's own output (--out)
        return (f"{path} is a comparison's output, not a run: read {path / 'comparison.md'}, or give {prog_compare} "
                "the run directories it compared")
    if not runs:
        return None
    names = [str(r.relative_to(path)) for r in runs]
    shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
    pair = " ".join(shlex.quote(str(r)) for r in runs[:2])  # commands paste as they are (issue 29)
    kind = "a comparison of" if (path / "comparison.md").exists() else "a folder of"
    return (f"{path} is {kind} {len(runs)} runs ({shown}), not one run: compare two of them ({prog_compare} "
            f"{pair}) or see their trend: {prog_history} {shlex.quote(str(path))}")
