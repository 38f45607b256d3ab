"""Human-readable views of a run's results: the console summary (and, later, report.md and plots)."""

from __future__ import annotations

from typing import Any

PHASE_ORDER = ("init", "init_model", "init_optimizer", "data", "forward", "backward", "optimizer", "step")


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.3f} ms"


def fmt_rate(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:.2f}{suffix}{unit}"
    return f"{value:.1f}{unit}"


def headline(data: dict[str, Any]) -> str:
    """One line saying what was run where: model, device, precision, shape, steps."""
    c, e = data.get("config", {}), data.get("env", {})
    return (
        f"{c.get('model')} on {e.get('device_type')} ({e.get('device_name')}), {c.get('precision')}, "
        f"B{c.get('batch_size')}xT{c.get('seq_len')}, {c.get('steps')} timed steps after {c.get('warmup_steps')} "
        f"warm-up, torch {e.get('torch')}, lightning {e.get('lightning')}"
    )


def phase_rows(data: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(experiment, phase, STATS) for every phase measured, in the order of a step."""
    rows = []
    for exp, result in data.get("experiments", {}).items():
        phases = result.get("phases", {})
        for phase in PHASE_ORDER:
            if phase in phases and phases[phase].get("n"):
                rows.append((exp, phase, phases[phase]))
    return rows


def format_summary(data: dict[str, Any]) -> str:
    """The table printed at the end of a run: median and spread of every phase, then rates and memory."""
    lines = [headline(data), ""]
    header = f"{'experiment':<11} {'phase':<15} {'median':>10} {'p10':>10} {'p90':>10} {'n':>4}"
    lines += [header, "-" * len(header)]
    for exp, phase, s in phase_rows(data):
        lines.append(
            f"{exp:<11} {phase:<15} {fmt_ms(s['median_ms']):>10} {fmt_ms(s['p10_ms']):>10} "
            f"{fmt_ms(s['p90_ms']):>10} {s['n']:>4}"
        )
    lines.append("")
    experiments = data.get("experiments", {})
    for exp, result in experiments.items():
        if "error" in result:
            lines.append(f"{exp}: FAILED: {result['error']}")
    init = experiments.get("init", {})
    if init.get("cold_init_ms") is not None:
        lines.append(
            f"init: device start-up {fmt_ms(init.get('device_startup_ms'))}, first build in the process "
            f"{fmt_ms(init['cold_init_ms'])} (not counted)"
        )
    inf = experiments.get("inference", {})
    if inf.get("naive_ms") is not None:
        lines.append(
            f"inference: synchronised {fmt_ms(inf['phases']['forward']['median_ms'])} per pass; an unsynchronised "
            f"host timer reads {fmt_ms(inf['naive_ms'])} for the same pass"
        )
    for exp in ("inference", "train"):
        thr = experiments.get(exp, {}).get("throughput")
        if thr:
            mfu = "-" if thr.get("mfu_pct") is None else f"{thr['mfu_pct']:.1f}%"
            mem = experiments[exp].get("memory", {})
            mem_s = ", ".join(f"{k.replace('_gib', '')} {v:.2f} GiB" for k, v in mem.items())
            tflops = "-" if thr.get("tflops") is None else f"{thr['tflops']:.2f}"
            lines.append(f"{exp}: {fmt_rate(thr.get('tokens_per_sec'))} tokens/s, {tflops} TFLOP/s, MFU {mfu}; {mem_s}")
    return "\n".join(lines)
