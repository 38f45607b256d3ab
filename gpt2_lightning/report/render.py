"""Human-readable views of results: the console summary, report.md and the formatting they share with the comparison
(compare.py) and the plots (plots.py)."""

from __future__ import annotations

from typing import Any

from gpt2_lightning.report.costs import summary_lines
from gpt2_lightning.report.formats import fmt_count, fmt_ms, fmt_rate
from gpt2_lightning.report.diagnosis import markdown as diagnosis_markdown
from gpt2_lightning.report.diagnosis import summary_lines as diagnosis_summary_lines
from gpt2_lightning.report.noise import TIMED_PHASE, instability_lines
from gpt2_lightning.report.profiled import counted_steps_profiler
from gpt2_lightning.report.ranks import console_lines as rank_lines
from gpt2_lightning.report.ranks import markdown as rank_markdown
from gpt2_lightning.report.repeat_summary import repeat_lines, status_line
from gpt2_lightning.report.timing import fit_line, host_line
from gpt2_lightning.report.training import LOSS_PLOT, diverged_lines, loss_section, title

PHASE_ORDER = ("init", "init_model", "init_optimizer", "data", "forward", "backward", "optimizer", "step", "validation",
               "checkpoint")


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
    lines = [headline(data), *repeat_lines(data), ""]
    rows = phase_rows(data)
    if rows:  # a run where every experiment failed (out of memory) has no table: no header over nothing
        header = f"{'experiment':<11} {'phase':<15} {'median':>10} {'p10':>10} {'p90':>10} {'n':>4}"
        lines += [header, "-" * len(header)]
        for exp, phase, s in rows:
            lines.append(
                f"{exp:<11} {phase:<15} {fmt_ms(s['median_ms']):>10} {fmt_ms(s['p10_ms']):>10} "
                f"{fmt_ms(s['p90_ms']):>10} {s['n']:>4}"
            )
        lines.append("")
    experiments = data.get("experiments", {})
    for exp, result in experiments.items():
        if "error" in result:
            lines.append(f"{exp}: FAILED: {result['error']}")
        elif result.get("skipped"):
            lines.append(f"{exp}: skipped: {result['skipped']}")
        elif result.get("interrupted"):
            lines.append(f"{exp}: {interrupted_text(result)}")
    on_gpu = data.get("env", {}).get("device_type") == "cuda"  # start-up and the naive timer mean nothing on a CPU
    init = experiments.get("init", {})
    if init.get("cold_init_ms") is not None:
        startup = f"device start-up {fmt_ms(init['device_startup_ms'])}, " if (
            on_gpu and init.get("device_startup_ms") is not None) else ""
        lines.append(f"init: {startup}first build in the process {fmt_ms(init['cold_init_ms'])} (not counted)")
    inf = experiments.get("inference", {})
    if on_gpu and inf.get("naive_ms") is not None and inf.get("phases", {}).get("forward", {}).get("n"):
        lines.append(
            f"inference: synchronised {fmt_ms(inf['phases']['forward']['median_ms'])} per pass; an unsynchronised "
            f"host timer reads {fmt_ms(inf['naive_ms'])} for the same pass"
        )
    no_energy: dict[str, list[str]] = {}  # why energy is unavailable -> the experiments it was unavailable to
    for exp in ("inference", "train"):
        result = experiments.get(exp, {})
        why = (result.get("energy") or {}).get("unavailable")
        if why:
            no_energy.setdefault(why, []).append(exp)
            result = {**result, "energy": None}  # said once for the run, below
        lines += rank_lines(exp, result, TIMED_PHASE[exp])  # several processes: ranks, straggler, global rate
        thr = result.get("throughput")
        if thr:
            mem = result.get("memory", {})
            mem_s = ", ".join(f"{k.replace('_gib', '')} {v:.2f} GiB" for k, v in mem.items())
            rank0 = "rank 0: " if result.get("world_size", 1) > 1 else ""  # per process; the global rate is above
            lines.append(f"{exp}: {rank0}{fmt_rate(thr.get('tokens_per_sec'))} tokens/s{_padding(thr)}, "
                         f"{fmt_flops(thr.get('tflops'))}, "
                         f"MFU {fmt_mfu(thr.get('mfu_pct'), data, thr.get('mfu_note'))}; {mem_s}")
        lines += [x for x in (flops_line(exp, result), host_line(exp, result)) if x]
        lines += summary_lines(exp, result)  # energy, cost, time to train
    lines += [f"energy unavailable ({', '.join(exps)}): {why}" for why, exps in no_energy.items()]
    for exp, result in experiments.items():
        if result.get("diagnosis"):
            lines += diagnosis_summary_lines(exp, result["diagnosis"])
    unstable = diverged_lines(data) + instability_lines(data)
    return "\n".join(lines + ([""] + unstable if unstable else []))


def _padding(thr: dict[str, Any]) -> str:
    """" (tokens: non-padding, from attention_mask)" when the batches' padding was left out of the tokens."""
    return f" ({thr['tokens_note']})" if thr.get("tokens_from") == "attention_mask" and thr.get("tokens_note") else ""


def flops_line(exp: str, result: dict[str, Any]) -> str | None:
    """Which FLOPs count TFLOP/s and MFU use (``flops_source``), and FlopCounterMode's beside a formula's."""
    thr = result.get("throughput") or {}
    used, counted, source = thr.get("flops_per_step"), thr.get("flops_counted_per_step"), thr.get("flops_source")
    if used is None:
        return f"{exp}: FLOPs unknown ({thr['flops_note']})" if thr.get("flops_note") else None
    line = f"{exp}: FLOPs per step {fmt_count(used, 4, 'G')} by {source}"
    if counted and source != "FlopCounterMode":
        line += f"; FlopCounterMode counts {fmt_count(counted, 4, 'G')} ({(counted - used) / used * 100:+.2f}%)"
    return line


def fmt_flops(tflops: float | None) -> str:
    """Achieved FLOP/s with a prefix that keeps digits visible: 0.0012 TFLOP/s reads 1.20 GFLOP/s."""
    if tflops is None:
        return "- FLOP/s"
    value = tflops * 1e12
    for div, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if value >= div:
            return f"{value / div:.2f} {prefix}FLOP/s"
    return f"{value:.0f} FLOP/s"


def fmt_mfu(mfu_pct: float | None, data: dict[str, Any], note: str | None = None) -> str:
    """MFU as a percentage, or why there is none: a CPU has no peak in the table, nor has an unknown GPU, a laptop
    part or a MIG slice (``note``: the reason the run recorded)."""
    if mfu_pct is not None:
        return f"{mfu_pct:.1f}%"
    env = data.get("env", {})
    if note and env.get("device_type") != "cpu":
        return f"n/a ({note})"
    if env.get("device_type") == "cpu":
        return "n/a (no peak for CPUs)"
    return f"n/a (no peak known for {env.get('device_name') or 'this device'})"


# ---------------------------------------------------------------------------------------------------- report.md
def _stats_table(phases: dict[str, Any]) -> list[str]:
    lines = ["| phase | median | mean | p10 | p90 | min | max | n |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for phase in PHASE_ORDER:
        s = phases.get(phase)
        if s and s.get("n"):
            cells = " | ".join(fmt_ms(s[k]) for k in ("median_ms", "mean_ms", "p10_ms", "p90_ms", "min_ms", "max_ms"))
            lines.append(f"| {phase} | {cells} | {s['n']} |")
    return lines


def _kv_table(title: str, values: dict[str, Any]) -> list[str]:
    lines = [f"| {title} | |", "|---|---|"]
    for k, v in values.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        lines.append(f"| {k} | {v} |")
    return lines


NOTHING_COUNTED = "before any counted step was measured"


def interrupted_detail(result: dict[str, Any]) -> str | None:
    """What an experiment stopped by a signal still holds (figures over the steps it timed before the signal), or
    None when it timed no counted step."""
    counted = max((s.get("n") or 0 for s in result.get("phases", {}).values()), default=0)
    return f"its figures are over the {counted} counted step(s) measured before the signal" if counted else None


def interrupted_text(result: dict[str, Any]) -> str:
    detail = interrupted_detail(result)
    return f"interrupted; {detail}" if detail else f"interrupted {NOTHING_COUNTED}"


def memory_split_line(split: dict[str, Any], snapshot: str | dict[str, str] | None = None) -> str:
    """Parameters, gradients, optimizer state and the rest of the peak, from tensor sizes (gpt2_lightning.profile.memory)."""
    parts = [f"{label} {split[key]:.3f} GiB" for key, label in (
        ("parameters_gib", "parameters"), ("gradients_gib", "gradients"), ("optimizer_state_gib", "optimizer state"))]
    if split.get("other_gib") is not None:
        parts.append(f"other (activations, workspace) {split['other_gib']:.3f} GiB of the "
                     f"{split['peak_gib']:.3f} GiB peak")
    line = "- Memory split: " + ", ".join(parts) + "."
    if isinstance(snapshot, dict) and snapshot.get("error"):
        line += f" Allocation history: failed ({snapshot['error']})."
    elif snapshot:
        line += f" Allocation history: [`{snapshot}`]({snapshot}) (open it at https://pytorch.org/memory_viz)."
    return line


def _short(name: str, limit: int = 90) -> str:
    return name if len(name) <= limit else name[: limit - 3] + "..."


def markdown_summary(data: dict[str, Any]) -> str:
    """The headline table as markdown: one row per experiment and phase (for TensorBoard's text tab too)."""
    rows = phase_rows(data)
    if not rows:
        return "No phase was measured: every experiment failed or was stopped (see report.md)."
    lines = ["| experiment | phase | median | p10 | p90 | n |", "|---|---|---:|---:|---:|---:|"]
    for exp, phase, s in rows:
        lines.append(f"| {exp} | {phase} | {fmt_ms(s['median_ms'])} | {fmt_ms(s['p10_ms'])} | "
                     f"{fmt_ms(s['p90_ms'])} | {s['n']} |")
    return "\n".join(lines)


def render_report(data: dict[str, Any], plots: dict[str, str]) -> str:
    """report.md: environment, settings, every experiment's phases, rates and memory, and the plots."""
    experiments = data.get("experiments", {})
    out = [title(data), "", headline(data), ""]
    out += [f"- {line}" for line in repeat_lines(data)] + ([""] if data.get("repeats") else [])
    if data.get("status") != "complete":
        out += [f"**{status_line(data)}**", ""]
    warned = diverged_lines(data) + instability_lines(data)
    out += [f"**{line}**" for line in warned] + ([""] if warned else [])
    profiler = counted_steps_profiler(data)
    if data.get("config", {}).get("profiler") == "pytorch" and profiler == "none":
        out += ["`--profiler pytorch` on a CPU profiled only the diagnosis's extra, uncounted steps (its trace is "
                "theirs): these timings are un-profiled.", ""]
    if profiler != "none":
        out += [f"Profiled with Lightning's `{profiler}` profiler: its overhead is inside these timings (the step "
                "that saves a trace most of all). Use them to see where time goes; quote a run without a profiler.",
                ""]
    env = dict(data.get("env", {}))
    if env.get("device_type") != "cuda":
        env.pop("device_startup_ms", None)  # a CPU has no start-up to time: 0.0 would read as a measurement
    out += loss_section(data, plots)  # a training run: what it learned, before where its time went
    out += ["## Environment", ""] + _kv_table("key", env) + [""]
    config = {k: v for k, v in data.get("config", {}).items() if v is not None}
    out += ["## Settings", ""] + _kv_table("setting", config) + [""]
    for exp in ("init", "inference", "train"):
        result = experiments.get(exp)
        if result is None:
            continue
        out += [f"## {exp}", ""]
        if "error" in result:
            out += [f"**Failed:** {result['error']}", ""]
            continue
        if result.get("skipped"):
            out += [f"**Skipped:** {result['skipped']}", ""]
            continue
        if result.get("interrupted"):
            detail = interrupted_detail(result)
            out += [f"**Interrupted:** {detail}." if detail else f"**Interrupted** {NOTHING_COUNTED}.", ""]
        out += _stats_table(result.get("phases", {})) + [""]
        on_gpu = data.get("env", {}).get("device_type") == "cuda"
        if exp == "init" and on_gpu:
            startup = result.get("device_startup_ms")
            startup_s = ("not measured: the device was already up in this process" if startup is None
                         else fmt_ms(startup))
            out.append(f"- Device start-up (CUDA context, first kernel), before any build: {startup_s}; "
                       f"first build in the process, not counted: {fmt_ms(result.get('cold_init_ms'))}.")
        elif exp == "init":
            out.append(f"- First build in the process, not counted: {fmt_ms(result.get('cold_init_ms'))}.")
        if exp == "init" and (result.get("construct") or {}).get("n"):
            out.append(f"- The module's constructor, before any Trainer (host clock, not in the table): "
                       f"{fmt_ms(result['construct']['median_ms'])} median.")
        if exp == "inference" and on_gpu and result.get("naive_ms") is not None:
            fwd = result["phases"]["forward"]["median_ms"]
            ratio = fwd / result["naive_ms"] if result["naive_ms"] else float("nan")
            out.append(
                f"- **Naive vs synchronised:** a host timer that does not wait for the device reads "
                f"{fmt_ms(result['naive_ms'])} per pass ({fmt_ms(result.get('naive_total_ms'))} for the "
                f"{result['phases']['forward']['n']} timed passes); the device really took {fmt_ms(fwd)} per pass "
                f"({fmt_ms(result.get('total_ms'))} in all): {ratio:.1f}x the naive figure."
            )
        if result.get("first_step_ms") is not None:
            compiled = " It includes torch.compile's compilation." if data.get("config", {}).get("compile") else ""
            extra = result.get("first_step_overhead_ms")
            versus = ("" if extra is None else f", {fmt_ms(extra)} over a steady one" if extra >= 0
                      else f", {fmt_ms(-extra)} faster than a steady one")
            out.append(f"- First (warm-up, not counted) step: {fmt_ms(result['first_step_ms'])}{versus}.{compiled}")
        out += rank_markdown(exp, result)
        thr = result.get("throughput")
        if thr:
            rank0 = " (rank 0)" if result.get("world_size", 1) > 1 else ""
            out.append(f"- Throughput{rank0}: {fmt_rate(thr.get('tokens_per_sec'))} tokens/s{_padding(thr)}, "
                       f"{fmt_flops(thr.get('tflops'))}, "
                       f"MFU {fmt_mfu(thr.get('mfu_pct'), data, thr.get('mfu_note'))}.")
        out += [f"- {x.split(': ', 1)[1]}." for x in (flops_line(exp, result), host_line(exp, result),
                                                     fit_line(exp, result)) if x]
        if result.get("memory"):
            out.append("- Memory: " + ", ".join(f"{k} {v:.3f} GiB" for k, v in result["memory"].items()) + ".")
        out += [f"- {line.split(': ', 1)[1]}" for line in summary_lines(exp, result)]
        if result.get("memory_breakdown"):
            out.append(memory_split_line(result["memory_breakdown"], result.get("memory_snapshot")))
        for trace in result.get("traces", []):
            out.append(f"- Trace: [`{trace}`]({trace}): open it in https://ui.perfetto.dev or chrome://tracing.")
        if result.get("top_ops"):
            out += ["", f"Top operators by {result.get('top_ops_by', 'self time')} (profiled steps):", "",
                    "| operator | self ms | % | calls |", "|---|---:|---:|---:|"]
            out += [f"| `{_short(op['name'])}` | {op['self_ms']:.3f} | {op['pct']:.1f} | {op['calls']} |"
                    for op in result["top_ops"]]
        if result.get("diagnosis"):
            out += [""] + diagnosis_markdown(result["diagnosis"], linked=tuple(result.get("traces", [])))
        out.append("")
    shown = {name: file for name, file in plots.items() if file != LOSS_PLOT}  # the loss curve is in its section
    if shown:
        out += ["## Plots", ""] + [f"![{name}]({file})" for name, file in shown.items()] + [""]
    return "\n".join(out)
