"""TensorBoard's view of a run's files, in plain Python (no torch, no Lightning): which chart name a FLOP/s figure
takes, and the event files of ``--repeat`` runs that are kept out of TensorBoard's run list."""

from __future__ import annotations

from pathlib import Path


def flops_metric(key: str, tflops: float) -> str:
    """The name an achieved-FLOP/s figure is charted under, in the console's unit (report.render.fmt_flops): below
    1 TFLOP/s (a CPU) ``.../gflops`` in GFLOP/s, where ``.../tflops`` would read 0.00x; else ``.../tflops``."""
    return key[: -len("tflops")] + "gflops" if tflops < 1 else key


PARKED_PREFIX = "parked."  # TensorBoard lists a file only when its name holds "tfevents" (io_wrapper.py)
EVENTS = "events.out.tfevents."


def park_events(folder: Path) -> int:
    """Take the TensorBoard event files under ``folder`` (a repeat of a ``--repeat`` run) out of TensorBoard's run
    list, by a name without "tfevents": ``tensorboard --logdir runs`` then lists one run per experiment of the
    repeated run, not one per repeat. ``show_parked`` puts them back. How many files were parked."""
    files = [f for f in Path(folder).rglob(EVENTS + "*") if f.is_file()]
    for f in files:
        f.rename(f.with_name(PARKED_PREFIX + f.name[len(EVENTS):]))
    return len(files)


def show_parked(folder: Path) -> int:
    """Give the parked event files under ``folder`` their TensorBoard names back (every repeat's per-step charts in
    TensorBoard's run list again); how many."""
    files = [f for f in Path(folder).rglob(PARKED_PREFIX + "*") if f.is_file()]
    for f in files:
        f.rename(f.with_name(EVENTS + f.name[len(PARKED_PREFIX):]))
    return len(files)
