"""Lines about how a step's time was measured: the host clock beside the device's, and fit's wall time against its
steps, validation and checkpoints (for the console summary and report.md)."""

from __future__ import annotations

from typing import Any

HOST_PHASES = ("data", "forward", "backward", "optimizer", "step")


def host_line(exp: str, result: dict[str, Any]) -> str | None:
    """``train: host clock / GPU clock, median ms: forward 2.10 / 52.9, ...; the GPU caught up with the host in 0 of
    5 steps`` (CUDA runs only: on a CPU the two clocks are one).

    A phase whose host time is far below its device time was queued ahead; a step in which the GPU had caught up
    began with the GPU idle, waiting for the host.
    """
    host = result.get("host")
    if not host:
        return None
    device, parts = result.get("phases", {}), []
    for phase in HOST_PHASES:
        h, d = host.get("phases", {}).get(phase), device.get(phase)
        if h and d and h.get("median_ms") is not None and d.get("median_ms") is not None:
            parts.append(f"{phase} {h['median_ms']:.3g} / {d['median_ms']:.3g}")
    line = f"{exp}: host clock / GPU clock, median ms: " + ", ".join(parts)
    if host.get("counted_steps"):
        line += (f"; the GPU caught up with the host in {host['gpu_caught_up_steps']} of {host['counted_steps']} "
                 "steps")
    return line


def fit_text(fit: dict[str, Any]) -> str:
    """``fit 12.34 s: steps 97% (warm-up included), validation 2%, checkpoints 1%, other 0% (...)``."""
    return (f"fit {fit['wall_ms'] / 1000:.2f} s: steps {fit['steps_pct']:.0f}% (warm-up included), validation "
            f"{fit['validation_pct']:.0f}%, checkpoints {fit['checkpoint_pct']:.0f}%, other {fit['other_pct']:.0f}% "
            "(Lightning's own work between them)")


def fit_line(exp: str, result: dict[str, Any]) -> str | None:
    """``train: fit 12.34 s: ...`` (``fit_text``) when fit's wall time is known."""
    fit = result.get("fit")
    return f"{exp}: {fit_text(fit)}" if fit else None
