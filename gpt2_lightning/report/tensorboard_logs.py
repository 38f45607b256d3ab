"""Where TensorBoard logs go and what they leave out: ``<run>/<experiment>``, no ``epoch`` chart.

``tensorboard --logdir runs`` names each log directory by its path under ``runs``, so ``<run>/<experiment>`` (not
``<run>/tensorboard/<experiment>``) keeps run names short: ``gpt2-cpu/train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger

from gpt2_lightning.report.tensorboard_files import flops_metric, show_parked


class TidyTensorBoardLogger(TensorBoardLogger):
    """TensorBoardLogger without the ``epoch`` scalar.

    Lightning's logger connector adds ``epoch`` to every metric logged with ``self.log`` (logger_connector.py,
    ``log_metrics``: ``scalar_metrics.setdefault("epoch", ...)`` when no ``step`` key is given). Our runs are counted
    in steps and have one endless epoch, so that chart is a flat line at 0, and it sorts first in TensorBoard.
    """

    flops_key: str | None = None  # the FLOP/s chart's name, fixed by its first value (see flops_metric)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        metrics = {k: v for k, v in metrics.items() if k != "epoch"}
        for key in [k for k in metrics if k.endswith("tflops")]:
            if self.flops_key is None:
                self.flops_key = flops_metric(key, float(metrics[key]))
            if self.flops_key != key:
                metrics[self.flops_key] = float(metrics.pop(key)) * 1000  # GFLOP/s
        if metrics:
            super().log_metrics(metrics, step)


def tensorboard_dir(run_dir: Path, experiment: str) -> Path:
    """Where an experiment's TensorBoard events go: <run>/<experiment>, so that ``tensorboard --logdir runs``
    names it ``<run>/<experiment>`` (``summary`` holds the report's table and plots)."""
    return Path(run_dir) / experiment


def make_logger(run_dir: Path, experiment: str, suffix: str = "") -> TensorBoardLogger:
    """One TensorBoard log dir per experiment: tensorboard_dir(run_dir, experiment). ``suffix`` ends the event file's
    name (the run's summary marks its own, so that a rewritten summary replaces the last one)."""
    # max_queue: the writer thread drains events in the background; with the default 10, logging a step's scalars
    # waits on it (~0.3 ms per call, measured), with 1000 it does not (~0.05 ms)
    log_dir = tensorboard_dir(run_dir, experiment)
    return TidyTensorBoardLogger(save_dir=str(log_dir.parent), name="", version=log_dir.name,
                                 default_hp_metric=False, max_queue=1000, filename_suffix=suffix)


def main(argv: list[str] | None = None) -> int:
    """``python -m gpt2_lightning.report.tensorboard_logs --show-repeats RUN``: every repeat's own per-step charts
    back in TensorBoard's run list (a --repeat run lists one run per experiment)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m gpt2_lightning.report.tensorboard_logs",
                                     description=main.__doc__)
    parser.add_argument("--show-repeats", metavar="RUN", required=True, type=Path,
                        help="a run directory made with --repeat N")
    args = parser.parse_args(argv)
    if not args.show_repeats.is_dir():
        print(f"tensorboard_logs: {args.show_repeats}: no such run directory", file=sys.stderr)
        return 2
    n = show_parked(args.show_repeats)
    print(f"{n} event file(s) under {args.show_repeats} listed by TensorBoard again")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
