"""A diagnosis (``diagnosis.diagnose``) as people read it: console text, report.md markdown, one summary line."""

from __future__ import annotations

from typing import Any

from gpt2_lightning.report import modules as module_report
from gpt2_lightning.analysis.categories import CATEGORIES

_NAME_CHARS = 70  # kernel names run to hundreds of characters of C++ templates


def _short(name: str, limit: int = _NAME_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 3] + "..."


def _top(d: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    return ("kernels", d.get("top_kernels") or []) if d.get("kind") == "gpu" else ("CPU operators", d.get("top_ops")
                                                                                   or [])


def fmt_calls(per_step: float) -> str:
    """Calls per step: a count (35), with one decimal only when the steps differ (35.5 over two steps of 35 and 36)."""
    return str(round(per_step)) if abs(per_step - round(per_step)) < 1e-9 else f"{per_step:.1f}"


def busy_line(d: dict[str, Any]) -> str:
    """GPU busy per step (and against the un-profiled step when known), or CPU operator time per step."""
    if d.get("kind") != "gpu":
        scaled = d.get("scaled")
        if scaled:  # in the un-profiled step's time (gpt2_lightning.analysis.phase_scaling)
            line = (f"CPU operator self time {d.get('cpu_self_ms_per_step', 0.0):.3f} ms per "
                    f"{scaled['step_ms']:.3f} ms un-profiled step ({scaled['note']}: a profiled step took "
                    f"{scaled['profiled_step_ms']:.3f} ms)")
        else:
            line = f"CPU operator self time {d.get('cpu_self_ms_per_step', 0.0):.3f} ms per profiled step"
    else:
        line = (f"GPU busy {d['gpu_busy_ms_per_step']:.3f} ms per step (kernels, memcpy and memset, overlapping "
                f"streams counted once; their plain sum is {d['kernel_ms_per_step']:.3f} ms)")
        if d.get("busy_pct") is not None:
            line += f": {d['busy_pct']:.0f}% of the un-profiled {d['step_ms']:.3f} ms step"
    return line


def communication_line(d: dict[str, Any]) -> str | None:
    """Time blocked in collectives (several processes): the gloo ranges' wall time on a CPU, NCCL kernels on a GPU."""
    comm = d.get("communication") or {}
    if not comm.get("ms_per_step"):
        return None
    if d.get("kind") != "gpu":
        return (f"blocked in collectives {comm['ms_per_step']:.3f} ms per profiled step (wall time of the backend's "
                f"ranges, {comm.get('collectives_per_step', 0):.3g} per step; the communication category counts only "
                f"the host's own work in them)")
    overlapped = comm.get("overlapped_pct")
    return (f"communication kernels {comm['ms_per_step']:.3f} ms per step"
            + ("" if overlapped is None else f", {overlapped:.0f}% of it overlapped with compute"))


def format_text(d: dict[str, Any], top: int = 10) -> str:
    """What scripts/analyze_trace.py prints."""
    lines = [f"trace: {d.get('trace')}",
             f"{d['steps']} profiled step(s), from {d['step_source']}"
             + ("" if d.get("profiled_step_ms") is None else
                f"; a profiled step took {d['profiled_step_ms']:.3f} ms on the host (profiler overhead included)"),
             busy_line(d)] + [x for x in (communication_line(d),) if x] + (
                 [f"note: {d['note']}"] if d.get("note") else []) + [""]
    share = "kernel time" if d.get("kind") == "gpu" else "CPU operator self time"
    lines += [f"{'category':<18} {'ms/step':>9} {'% of ' + share:>12}"]
    for cat in CATEGORIES:
        c = d["categories"][cat]
        lines.append(f"{cat:<18} {c['ms_per_step']:>9.3f} {c['pct']:>12.1f}")
    what, rows = _top(d)
    if rows:
        lines += ["", f"top {what}:", f"{'ms/step':>9} {'calls':>6} {'%':>5}  {'category':<16} name"]
        lines += [f"{r['ms_per_step']:>9.3f} {fmt_calls(r['calls_per_step']):>6} {r['pct']:>5.1f}  {r['category']:<16} "
                  f"{_short(r['name'])}" for r in rows[:top]]
    if d.get("modules"):
        lines += [""] + module_report.text_lines(d["modules"])
    if d.get("verdict"):
        lines += ["", "verdict:"] + [f"- {s}" for s in d["verdict"]]
    return "\n".join(lines)


def summary_lines(exp: str, d: dict[str, Any]) -> list[str]:
    """Two or more lines for the console summary of a run."""
    if "error" in d:
        return [f"{exp}: diagnosis failed: {d['error']}"]
    if "skipped" in d:
        return [f"{exp}: diagnosis skipped: {d['skipped']}"]
    if "not_run" in d:
        return [f"{exp}: no breakdown: {d['not_run']}"]
    if "interrupted" in d:
        return [f"{exp}: diagnosis interrupted: {d['interrupted']}"]
    cats = sorted(d.get("categories", {}).items(), key=lambda kv: kv[1]["pct"], reverse=True)
    cats_s = ", ".join(f"{k} {v['pct']:.0f}%" for k, v in cats[:3] if v["pct"] > 0)
    what = "uncounted profiled" if d.get("extra_steps") else "profiled"
    lines = [f"{exp}: diagnosis over {d['steps']} {what} step(s): {busy_line(d)}; {cats_s}"]
    lines += [f"  ({d['note']})"] if d.get("note") else []
    modules = module_report.console_line(d.get("modules") or {})
    lines += [modules] if modules else []
    layers = module_report.console_layers(d.get("modules") or {}) if modules else None
    lines += [layers] if layers else []
    return lines + [f"  - {s}" for s in d.get("verdict", [])]


def markdown(d: dict[str, Any], top: int = 5, linked: tuple[str, ...] = ()) -> list[str]:
    """The diagnosis section of an experiment in report.md (and TensorBoard's Text tab)."""
    if "error" in d:
        return [f"**Diagnosis failed:** {d['error']}", ""]
    if "skipped" in d:
        return [f"**Diagnosis skipped:** {d['skipped']}.", ""]
    if "not_run" in d:
        return [f"No per-step breakdown: {d['not_run']}.", ""]
    if "interrupted" in d:
        return [f"**Diagnosis interrupted:** {d['interrupted']}.", ""]
    out = ["### Diagnosis", ""]
    out += [f"- **{s}**" for s in d.get("verdict", [])]
    if d.get("extra_steps"):
        over = (f"over {d['steps']} profiled steps run after the counted ones and not counted "
                f"({d.get('extra_wall_s', 0.0):.1f} s of extra wall time)")
    else:
        over = f"over the {d['steps']} profiled step(s) of the trace"
    out += [f"- {busy_line(d)}, {over}."] + [f"- {x[0].upper()}{x[1:]}." for x in (communication_line(d),) if x]
    out += [f"- Note: {d['note']}."] if d.get("note") else []
    out += ["", "| category | ms per step | % |", "|---|---:|---:|"]
    out += [f"| {cat} | {d['categories'][cat]['ms_per_step']:.3f} | {d['categories'][cat]['pct']:.1f} |"
            for cat in CATEGORIES if d["categories"][cat]["ms_per_step"] > 0]
    what, rows = _top(d)
    if rows:
        out += ["", f"Top {what}:", "", "| name | category | ms per step | calls per step | % |",
                "|---|---|---:|---:|---:|"]
        out += [f"| `{_short(r['name'])}` | {r['category']} | {r['ms_per_step']:.3f} | {fmt_calls(r['calls_per_step'])} | "
                f"{r['pct']:.1f} |" for r in rows[:top]]
    if d.get("modules"):
        out += [""] + module_report.markdown_lines(d["modules"])
    if d.get("trace_file") and d["trace_file"] not in linked:  # linked: traces the report already names
        out += ["", f"Trace of these steps: [`{d['trace_file']}`]({d['trace_file']})."]
    return out + [""]


def markdown_all(data: dict[str, Any]) -> str:
    """Every experiment's diagnosis, for TensorBoard's Text tab; empty when none was made."""
    parts = []
    for exp, result in data.get("experiments", {}).items():
        if result.get("diagnosis"):
            parts += [f"## {exp}", ""] + markdown(result["diagnosis"])
    return "\n".join(parts)
