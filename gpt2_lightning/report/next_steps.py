"""What the end of a run says: the files it wrote, what each is for, and the commands worth running next.

A first-time user sees results.json named and nothing else; the report and the plots are where the figures are read,
and compare.py, a sweep and TensorBoard are the next questions. Report-side: it only looks at the run directory.
"""

from __future__ import annotations

import shlex
from pathlib import Path

# what TensorBoard shows first (Time Series sorts chart groups by name; seen in headless Chromium, docs/reading-results.md)
TENSORBOARD_HINT = "Time Series opens on throughput/ then time/ per step; HParams tab: one row per experiment"

# what a person opens, in the order worth opening them
READ_FIRST = ("report.md", "loss.png", "phases.png", "per_step.png", "modules.png", "sweep.md", "sweep.png", "comparison.md", "comparison.png")


def written(run_dir: Path) -> list[str]:
    """The readable files the run left in run_dir (only those really on disk: a full disk may have refused some)."""
    return [name for name in READ_FIRST if (Path(run_dir) / name).is_file()]


def footer(run_dir: Path, tool: str = "profile.py", sweep: bool = False, compared: bool = False,
           resumable: bool = True) -> str:
    """The run's last lines: where to read it, then the next commands (compare, a sweep, TensorBoard). Every path
    in a command is quoted as a shell needs it (``shlex.quote``), so each line pastes as it is. ``resumable=False``
    (train.py --module: its --resume reads the built-in GPT-2's checkpoints only): no --resume line, since train.py
    would refuse it; the checkpoint is named for Lightning's own ``ckpt_path`` instead."""
    run_dir = Path(run_dir)
    q = shlex.quote
    files = written(run_dir)
    lines = [f"read: {run_dir / files[0]}" + (f" (with {', '.join(files[1:])})" if files[1:] else "")] if files else []
    lines.append("next:")
    lines.append(f"  tensorboard --logdir {q(str(run_dir))}    # {TENSORBOARD_HINT}")
    if not compared:
        what = "one sweep point with another" if sweep else "against another run, e.g. a change or a GPU"
        target = (f"{q(str(run_dir / '<point>'))} {q(str(run_dir / '<other point>'))}" if sweep
                  else f"{q(str(run_dir))} runs/<other run>")
        lines.append(f"  python scripts/compare.py {target}    # {what}")
    if not sweep and tool == "profile.py":
        lines.append("  add --sweep batch_size=1,2,4,8 to the same command    # how the rates scale with the batch")
    if tool == "train.py" and not resumable:
        lines.append(f"  trainer.fit(..., ckpt_path={str(run_dir / 'checkpoints' / 'last.ckpt')!r}) in your own code    "
                     "# train on (train.py --resume continues the built-in GPT-2 only)")
    elif tool == "train.py":
        lines.append(f"  the same command with --resume {q(str(run_dir / 'checkpoints' / 'last.ckpt'))} and a larger "
                     "--max-steps    # train on")
    return "\n".join(lines)
