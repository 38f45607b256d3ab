"""The verdict: what the measured figures say to try next, in one to three sentences. No Trainer in here.

Every rule lives in this module, each threshold is a named constant, and each sentence quotes the figure it rests on.
Inputs are a trace analysis (``trace_analysis.analyze_trace``), the *un-profiled* median step of the same run
(profiling slows the host, not the kernels: kernel time from the trace over the real step is the honest busy share)
and, when the run has them, its phases (for the data share), the host block (host-clock phases and how often the GPU
caught up with the host) and its MFU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpt2_lightning.analysis.module_parts import NON_MODEL_ROWS
from gpt2_lightning.analysis.straggler_text import excess_phrase, others_wait_clause

# ------------------------------------------------------------------------------------------------ thresholds
LAUNCH_BOUND_IDLE_PCT = 15.0  # GPU idle for at least this share of the step: the host does not keep it fed
COPY_CAST_PCT = 15.0  # casts and copies at least this share of kernel (or CPU operator) time
DATA_WAIT_PCT = 10.0  # the data phase at least this share of the step
COMMUNICATION_PCT = 10.0  # communication kernels at least this share of kernel time
COMM_OVERLAP_LOW_PCT = 50.0  # less than this share of communication hidden under compute: worth overlapping more
MATMUL_DOMINANT_PCT = 50.0  # matmuls at least this share of kernel time ...
MATMUL_BUSY_PCT = 85.0  # ... and the GPU busy at least this share of the step: it does the right work
MODULE_LARGE_PCT = 15.0  # a part of the model with at least this share of the step's attributed time ...
MODULE_BELOW_PEAK_PCT = 20.0  # ... running its matmul work below this share of the device's peak
# on a CPU (no kernels, no idle device: the host's own time is the step)
CPU_OPTIMIZER_PCT = 10.0  # the optimizer phase at least this share of the step: AdamW's per-parameter loop
CPU_MATMUL_PCT = 50.0  # matmuls at least this share of CPU operator time: compute-bound on the cores
MAX_SENTENCES = 3
_PART_ADVICE = {
    "attention kernel": "check that scaled_dot_product_attention runs a fused kernel (flash or cuDNN: bf16/fp16, "
                        "head size up to 256) and try --compile",
    "attention projections": "its matmuls are small: a larger --batch-size, or bf16-mixed if not in use",
    "MLP": "its matmuls are small: a larger --batch-size, or bf16-mixed if not in use",
    "output head": "a larger --batch-size, or bf16-mixed if not in use (the vocabulary is already padded to 64)",
}


@dataclass
class Evidence:
    """What the rules may look at; any of it may be missing (None)."""

    analysis: dict[str, Any]
    step_ms: float | None = None  # un-profiled median step (train) or forward pass (inference)
    phases: dict[str, Any] | None = None  # results.json phases: {phase: STATS}
    host: dict[str, Any] | None = None  # {"phases": {phase: STATS}, "gpu_caught_up_steps": K, "counted_steps": N}
    mfu_pct: float | None = None
    step_is_profiled: bool = False  # the step times came from profiled steps: too slow on the host to judge by
    precision: str | None = None  # the run's --precision, when known
    straggler: dict[str, Any] | None = None  # several processes: results.json's straggler block (analysis.ranks)

    @property
    def step_times_usable(self) -> bool:
        return not self.step_is_profiled

    @property
    def busy_pct(self) -> float | None:
        return busy_pct(self.analysis, self.step_ms) if self.step_times_usable else None

    def category(self, name: str) -> dict[str, float]:
        return self.analysis.get("categories", {}).get(name, {"ms_per_step": 0.0, "pct": 0.0})

    @property
    def time_of(self) -> str:
        """What category shares are shares of."""
        return "kernel time" if self.analysis.get("kind") == "gpu" else "CPU operator time"


@dataclass
class Finding:
    weight_ms: float  # time per step at stake: the larger, the earlier the sentence
    sentence: str


def busy_pct(analysis: dict[str, Any], step_ms: float | None) -> float | None:
    """GPU busy time per step over the un-profiled median step, in percent; None without a GPU or a step time."""
    busy = analysis.get("gpu_busy_ms_per_step")
    if busy is None or not step_ms or step_ms <= 0:
        return None
    return 100.0 * busy / step_ms


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


# ------------------------------------------------------------------------------------------------ the rules
def launch_bound(e: Evidence) -> Finding | None:
    busy = e.busy_pct
    if busy is None or 100.0 - busy < LAUNCH_BOUND_IDLE_PCT:
        return None
    idle = 100.0 - busy
    caught = ""
    if e.host and e.host.get("counted_steps"):
        caught = (f"; it caught up with the host in {e.host.get('gpu_caught_up_steps', 0)} of "
                  f"{e.host['counted_steps']} counted steps")
    return Finding(
        idle / 100.0 * e.step_ms,
        f"The GPU is idle {idle:.0f}% of the {_ms(e.step_ms)} step (its kernels keep it busy "
        f"{_ms(e.analysis['gpu_busy_ms_per_step'])}){caught}: the host does not queue work fast enough; "
        f"try --compile, a larger --batch-size, or CUDA graphs.",
    )


def copy_cast(e: Evidence) -> Finding | None:
    cat = e.category("copy_cast")
    if cat["pct"] < COPY_CAST_PCT:
        return None
    fused = "--compile, which fuses them into the kernels around them"
    if e.precision is None:  # a trace alone: both causes
        advice = (f"under mixed precision autocast re-casts the fp32 weights every step (keep them in bf16: "
                  f"--precision bf16-true); layout copies (.contiguous() after a transpose) and casts alike go with "
                  f"{fused}")
    elif e.precision == "fp8":
        advice = ("fp8 runs under bf16 autocast, which re-casts the fp32 weights every step, and each float8 Linear "
                  "casts its input, weight and gradient to float8 (dynamic scaling) at every matmul; "
                  f"use {fused}")
    elif "mixed" in e.precision:
        advice = (f"autocast ({e.precision}) re-casts the fp32 weights every step; keep the weights in bf16 "
                  f"(--precision bf16-true) or use {fused}")
    else:
        advice = f"with {e.precision} there is no autocast, so these are layout copies and conversions; try {fused}"
    return Finding(
        cat["ms_per_step"],
        f"Casts and copies take {cat['pct']:.0f}% of {e.time_of} ({_ms(cat['ms_per_step'])} per step): {advice}.",
    )


def data_wait(e: Evidence) -> Finding | None:
    if not e.step_times_usable:
        return None
    phases = e.phases or {}
    data = (phases.get("data") or {}).get("median_ms")
    step = (phases.get("step") or {}).get("median_ms") or e.step_ms
    if data is None or not step:
        return None
    share = 100.0 * data / step
    if share < DATA_WAIT_PCT:
        return None
    return Finding(
        data,
        f"Waiting for data takes {share:.0f}% of each step ({_ms(data)} of {_ms(step)}): give the DataLoader "
        f"worker processes (num_workers) and pinned memory (pin_memory=True) so batches are ready when a step ends.",
    )


def communication(e: Evidence) -> Finding | None:
    cat = e.category("communication")
    if cat["pct"] < COMMUNICATION_PCT:
        return None
    comm = e.analysis.get("communication") or {}
    overlapped = comm.get("overlapped_pct")
    exposed = cat["ms_per_step"] - comm.get("overlapped_ms_per_step", 0.0)
    overlap_s = "" if overlapped is None else f", {overlapped:.0f}% of it overlapped with compute"
    advice = ("overlap it with the backward pass (DDP's gradient buckets, bucket_cap_mb) or communicate less often "
              "(gradient accumulation)" if overlapped is None or overlapped < COMM_OVERLAP_LOW_PCT
              else "most of it is hidden already; fewer or smaller collectives (gradient accumulation) would help")
    return Finding(
        exposed,
        f"Communication (NCCL) takes {cat['pct']:.0f}% of kernel time ({_ms(cat['ms_per_step'])} per step"
        f"{overlap_s}): {advice}.",
    )


def matmul_busy(e: Evidence) -> Finding | None:
    busy, cat = e.busy_pct, e.category("matmul")
    if busy is None or busy < MATMUL_BUSY_PCT or cat["pct"] < MATMUL_DOMINANT_PCT:
        return None
    mfu = "" if e.mfu_pct is None else f" (now {e.mfu_pct:.0f}%)"
    return Finding(
        0.0,  # good news comes last
        f"Matmuls take {cat['pct']:.0f}% of kernel time and the GPU is busy {busy:.0f}% of the step: it is doing "
        f"the right work, so the figure to watch is MFU{mfu}; larger matmuls (batch, width) or a faster precision "
        f"raise it.",
    )


def slow_part(e: Evidence) -> Finding | None:
    """A large part of the model (``modules``, with FLOPs) whose matmul work runs far below the device's peak, or,
    with no matmul work at all, memory-bound work that takes a large share."""
    modules = e.analysis.get("modules") or {}
    parts = [p for p in modules.get("parts", []) if p["part"] not in NON_MODEL_ROWS and "flops_per_step" in p
             and p["pct"] >= MODULE_LARGE_PCT]
    of = "kernel time" if str(modules.get("basis", "")).startswith("kernel") else "host time"
    for p in sorted(parts, key=lambda p: -p["total_ms"]):
        plural = p["part"].endswith("s")
        share = (f"The model's {p['part']} {'take' if plural else 'takes'} {p['pct']:.0f}% of its {of} "
                 f"({_ms(p['total_ms'])} per step")
        if p.get("matmul") and p.get("pct_of_peak") is not None and p["pct_of_peak"] < MODULE_BELOW_PEAK_PCT:
            advice = _PART_ADVICE.get(p["part"], "look at its kernels in the trace")
            return Finding(p["total_ms"], f"{share}) at {p['tflops']:.1f} TFLOP/s, {p['pct_of_peak']:.0f}% of the "
                                          f"device's peak: {advice}.")
        if not p.get("matmul"):
            return Finding(p["total_ms"], f"{share}) and {'do' if plural else 'does'} no matmul work: "
                                          f"memory-bound reads and writes; --compile fuses such kernels into fewer.")
    return None


def _cpu(e: Evidence) -> bool:
    return e.analysis.get("kind") == "cpu"


def cpu_optimizer(e: Evidence) -> Finding | None:
    """On a CPU, AdamW's update takes a large share of the step: torch runs it as a Python loop of a few operations
    per parameter tensor unless asked for ``foreach`` or ``fused``. The share is the un-profiled optimizer phase's
    (the profiler slows that loop far more than the matmuls); from the trace's categories without phases."""
    if not _cpu(e) or not e.step_times_usable:
        return None
    phases = e.phases or {}
    opt = (phases.get("optimizer") or {}).get("median_ms")
    step = (phases.get("step") or {}).get("median_ms") or e.step_ms
    if opt is not None and step:
        share, quoted = 100.0 * opt / step, f"{_ms(opt)} of the {_ms(step)} step"
    else:
        cat = e.category("optimizer")
        opt, share, quoted = cat["ms_per_step"], cat["pct"], "of CPU operator time"
    if share < CPU_OPTIMIZER_PCT:
        return None
    return Finding(opt, f"The optimizer takes {share:.0f}% of each step ({quoted}): on a CPU AdamW runs a loop of a "
                        f"few operations per parameter tensor; try AdamW(..., foreach=True), or fused=True, in "
                        f"configure_optimizers (one call over every tensor).")


def cpu_matmul(e: Evidence) -> Finding | None:
    """On a CPU, matmuls dominate: the cores compute; more of them, or larger matmuls, is what helps."""
    cat = e.category("matmul")
    if not _cpu(e) or cat["pct"] < CPU_MATMUL_PCT:
        return None
    return Finding(cat["ms_per_step"], f"Matmuls take {cat['pct']:.0f}% of CPU operator time "
                                       f"({_ms(cat['ms_per_step'])} per step): the step is compute on the cores; "
                                       f"give it every physical core (--threads) and larger matmuls (a larger "
                                       f"--batch-size).")


def straggler(e: Evidence) -> Finding | None:
    """Several processes: one rank slower than the others makes every rank wait for it, whatever the model does."""
    s = e.straggler
    if not s:
        return None
    clause = others_wait_clause(s, _ms, for_it=True)
    wait = "" if clause is None else f", and {clause}"
    return Finding(
        s["excess_ms"] * 10,  # it sets every rank's pace: first
        f"Rank {s['rank']} is the straggler: {excess_phrase(s, _ms)}{wait}; find what slows "
        f"that rank (its device, its data, other work on its cores) before tuning the model.",
    )


RULES: tuple[Callable[[Evidence], Finding | None], ...] = (straggler, launch_bound, copy_cast, data_wait,
                                                           communication, slow_part, matmul_busy, cpu_optimizer,
                                                           cpu_matmul)


def _nothing_fired(e: Evidence) -> str:
    cats = e.analysis.get("categories", {})
    top = max(cats, key=lambda k: cats[k]["pct"]) if cats else None
    top_s = "" if top is None else f"; the largest category, {top}, takes {cats[top]['pct']:.0f}% of {e.time_of}"
    if _cpu(e):  # still something to try on a CPU
        return (f"No single cause stands out on this CPU{top_s}: try a larger --batch-size (more work per operator "
                f"call) and --threads set to the physical cores.")
    busy = e.busy_pct
    busy_s = "" if busy is None else f"the GPU is busy {busy:.0f}% of the {_ms(e.step_ms)} step"
    return f"No rule fired: {busy_s or 'no single cause stands out'}{top_s}."


def verdict(e: Evidence) -> list[str]:
    """One to three sentences, the weightiest first; each quotes its figure."""
    findings = [f for f in (rule(e) for rule in RULES) if f is not None]
    findings.sort(key=lambda f: f.weight_ms, reverse=True)
    return [f.sentence for f in findings[:MAX_SENTENCES]] or [_nothing_fired(e)]


PROFILED_STEP_NOTE = ("the counted steps ran under a profiler, which slows the host: the busy share and the rules that "
                      "judge step times are left out; run without --profiler for them")


def diagnose(analysis: dict[str, Any], step_ms: float | None = None, phases: dict[str, Any] | None = None,
             host: dict[str, Any] | None = None, mfu_pct: float | None = None, step_is_profiled: bool = False,
             precision: str | None = None, straggler: dict[str, Any] | None = None) -> dict[str, Any]:
    """The analysis with ``step_ms``, ``busy_pct`` and ``verdict`` added, only with a step time to judge against."""
    out = dict(analysis)
    if step_ms:
        e = Evidence(analysis, step_ms, phases, host, mfu_pct, step_is_profiled, precision, straggler)
        out.update(step_ms=step_ms, busy_pct=e.busy_pct, verdict=verdict(e))
        if step_is_profiled:
            out["note"] = PROFILED_STEP_NOTE
    return out
