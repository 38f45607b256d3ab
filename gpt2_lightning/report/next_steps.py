"""What the end of a run says: the files it wrote, what each is for, and the commands worth running next.

A first-time user sees results.json named and nothing else; the report and the plots are where the figures are read,
and compare.py, a sweep and TensorBoard are the next questions. Report-side: it only looks at the run directory.
"""

from __future__ import annotations

from pathlib import Path

# what a person opens, in the order worth opening them
READ_FIRST = ("report.md", "loss.png", "phases.png", "per_step.png", "modules.png", "sweep.md", "sweep.png", "comparison.md", "comparison.png")


def written(run_dir: Path) -> list[str]:
    """The readable files the run left in run_dir (only those really on disk: a full disk may have refused some)."""
    return [name for name in READ_FIRST if (Path(run_dir) / name).is_file()]


def footer(run_dir: Path, tool: str = "profile.py", sweep: bool = False, compared: bool = False) -> str:
    """The run's last lines: where to read it, then the next commands (compare, a sweep, TensorBoard)."""
    run_dir = Path(run_dir)
    files = written(run_dir)
    lines = [f"read: {run_dir / files[0]}" + (f" (with {', '.join(files[1:])})" if files[1:] else "")] if files else []
    lines.append("next:")
    lines.append(f"  tensorboard --logdir {run_dir}    # per-step charts (time/ first), HParams across runs")
    if not compared:
        what = "one sweep point with another" if sweep else "against another run, e.g. a change or a GPU"
        target = f"{run_dir}/<point> {run_dir}/<other point>" if sweep else f"{run_dir} runs/<other run>"
        lines.append(f"  python scripts/compare.py {target}    # {what}")
    if not sweep and tool == "profile.py":
        lines.append("  add --sweep batch_size=1,2,4,8 to the same command    # how the rates scale with the batch")
    if tool == "train.py":
        lines.append(f"  the same command with --resume {run_dir / 'checkpoints' / 'last.ckpt'} and a larger "
                     "--max-steps    # train on")
    return "\n".join(lines)
