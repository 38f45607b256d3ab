"""The per-module breakdown (``modules`` of a diagnosis) as people read it: a text table, a markdown table, a console
line. Plain Python, no torch."""

from __future__ import annotations

import statistics
from typing import Any

from gpt2_lightning.analysis.module_parts import short_names

CONSOLE_PARTS = 4  # the largest parts named on the console


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _unit(m: dict[str, Any]) -> tuple[str, float]:
    """TFLOP/s, or GFLOP/s when no part reaches 1 TFLOP/s (a CPU)."""
    rates = [r["tflops"] for r in m.get("parts", []) if r.get("tflops") is not None]
    return ("TFLOP/s", 1.0) if rates and max(rates) >= 1.0 else ("GFLOP/s", 1000.0)


def _rate(row: dict[str, Any], scale: float) -> tuple[str, str]:
    tflops, pct = row.get("tflops"), row.get("pct_of_peak")
    return ("-" if tflops is None else f"{tflops * scale:.1f}", "-" if pct is None else f"{pct:.1f}")


def _shown(m: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in m["parts"] if r["total_ms"] > 0]  # e.g. no loss or optimizer in inference


def _of(m: dict[str, Any]) -> str:
    if m.get("scaled"):
        return "the un-profiled step"
    return "kernel time" if str(m.get("basis", "")).startswith("kernel") else "host time"


def _blocks_line(m: dict[str, Any]) -> str | None:
    blocks = m.get("blocks") or []
    if not blocks:
        return None
    median = statistics.median(b["total_ms"] for b in blocks)
    line = (f"blocks: {len(blocks)}, {min(b['total_ms'] for b in blocks):.3f} to "
            f"{max(b['total_ms'] for b in blocks):.3f} ms per step (median {median:.3f})")
    layers = m.get("block_list")
    if layers:
        line = line.replace("blocks: ", f"blocks ({layers['path']}.N, {layers['class']}): ", 1)
    outliers = [b for b in blocks if b["block"] in (m.get("outlier_blocks") or [])]
    if outliers:
        line += "; standing out: " + ", ".join(f"block {b['block']} {b['total_ms']:.3f} ms "
                                               f"({b['total_ms'] / median:.1f}x the median, "
                                               f"+{b['total_ms'] - median:.3f} ms)" for b in outliers)
    return line


def _beside_line(m: dict[str, Any]) -> str | None:
    """Threads that do not run the model (gloo's collectives): their time, which is not part of the step's."""
    b = m.get("beside_the_step") or {}
    if not b.get("threads"):
        return None
    return (f"beside the step, on {b['threads']} other thread(s) (not in the total above): collectives "
            f"{b['collective_threads_ms']:.3f} ms per step, other work {b['other_threads_ms']:.3f} ms per step")


def _header(m: dict[str, Any]) -> str:
    return (f"by part of the model, grouped by {m['grouping'] if m['grouping'] != 'gpt2' else 'GPT-2 part'}: "
            f"{m['total_ms_per_step']:.3f} ms per step of {m['basis']}")


def text_lines(m: dict[str, Any]) -> list[str]:
    """What analyze_trace.py prints (and the unavailable reason when there are no module ranges)."""
    if "unavailable" in m:
        return [f"modules: not available: {m['unavailable']}"]
    unit, scale = _unit(m)
    names = short_names([r["part"] for r in _shown(m)], 32)  # never cut so that two rows read alike
    w = max([32, *map(len, names.values())])
    rec = any(r.get("recompute_ms") is not None for r in m["parts"])  # activation checkpointing
    lines = [f"modules: {_header(m)}",
             f"{'part':<{w}} {'fwd ms':>9} {'bwd ms':>9}" + (f" {'recomp ms':>9}" if rec else "")
             + f" {'total ms':>9} {'%':>5} {unit:>8} {'% peak':>6}"]
    for r in _shown(m):
        tflops, pct = _rate(r, scale)
        lines.append(f"{names[r['part']]:<{w}} {_ms(r['forward_ms']):>9} {_ms(r['backward_ms']):>9} "
                     + (f"{_ms(r.get('recompute_ms')):>9} " if rec else "")
                     + f"{r['total_ms']:>9.3f} {r['pct']:>5.1f} {tflops:>8} {pct:>6}")
    blocks = _blocks_line(m)
    if blocks:
        lines.append(blocks)
    beside = _beside_line(m)
    if beside:
        lines.append(beside)
    if m.get("backward_without_forward_ms"):
        lines.append(f"backward whose forward ran before the trace began (counted outside any module): "
                     f"{m['backward_without_forward_ms']:.3f} ms per step")
    return lines


def markdown_lines(m: dict[str, Any]) -> list[str]:
    """The breakdown's section of report.md."""
    if "unavailable" in m:
        return [f"Per-module breakdown: not available ({m['unavailable']}).", ""]
    rec = any(r.get("recompute_ms") is not None for r in m["parts"])  # activation checkpointing
    out = [f"Per-module breakdown, {_header(m)}:", "",
           "| part | forward ms | backward ms | " + ("recompute ms | " if rec else "")
           + f"total ms | % | {_unit(m)[0]} | % of peak |",
           "|---|---:|---:|" + ("---:|" if rec else "") + "---:|---:|---:|---:|"]
    for r in _shown(m):
        tflops, pct = _rate(r, _unit(m)[1])
        out.append(f"| {r['part']} | {_ms(r['forward_ms'])} | {_ms(r['backward_ms'])} | "
                   + (f"{_ms(r.get('recompute_ms'))} | " if rec else "")
                   + f"{r['total_ms']:.3f} | {r['pct']:.1f} | {tflops} | {pct} |")
    blocks, beside = _blocks_line(m), _beside_line(m)
    out += [""] + [blocks[0].upper() + blocks[1:] + "."] if blocks else []
    return out + ([""] + [beside[0].upper() + beside[1:] + "."] if beside else []) + [""]


def console_line(m: dict[str, Any]) -> str | None:
    """The few largest parts, for the console summary; None when the breakdown is not available."""
    if "parts" not in m:
        return None
    rows = sorted(m["parts"], key=lambda r: -r["total_ms"])[:CONSOLE_PARTS]
    return "  modules (% of " + _of(m) + "): " + ", ".join(f"{r['part']} {r['pct']:.0f}%" for r in rows)
