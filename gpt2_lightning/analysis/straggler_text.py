"""How a straggler's excess is said (the console, report.md, the verdict, comparisons): the figure put beside a phase
is that phase's own excess. Plain Python, shared by ``ranks`` and ``verdict`` (which ``ranks`` imports)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NOISE_MS = 1.0  # ranks' own times (and a phase's excess against the whole) closer than this are the same


def excess_phrase(s: dict[str, Any], ms: Callable[[float], str] | None = None) -> str:
    """"+113 ms per step in forward (+135 ms of own work per step in all)": the figure beside the phase is that
    phase's own excess (``phase_excess_ms``); the rank's whole excess in own work (``excess_ms``) is added when it
    differs by more than noise, and stands alone when no phase could be told."""
    ms = ms or _ms
    total, in_phase = s["excess_ms"], s.get("phase_excess_ms")
    if in_phase is None:
        return f"+{ms(total)} of own work per step"
    head = f"+{ms(in_phase)} per step in {s['phase']}"
    if abs(total - in_phase) <= max(NOISE_MS, 0.1 * abs(total)):
        return head  # one phase holds it all: one figure
    return f"{head} (+{ms(total)} of own work per step in all)"


def others_wait_clause(s: dict[str, Any], ms: Callable[[float], str] | None = None, for_it: bool = False
                       ) -> str | None:
    """"the other ranks wait ~21 ms per step [for it] in the all-reduce"; None when their wait was not measured."""
    if s.get("others_wait_ms") is None:
        return None
    ms = ms or _ms
    return (f"the other ranks wait ~{ms(s['others_wait_ms'])} per step{' for it' if for_it else ''} in the "
            f"{s.get('waits_in') or 'collectives'}")


def _ms(v: float) -> str:
    return f"{v:.3g} ms" if abs(v) < 100 else f"{v:.0f} ms"
