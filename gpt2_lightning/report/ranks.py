"""Several processes in the console summary and report.md: each rank's figures, the straggler sentence and the job's
global rate (``gpt2_lightning.analysis.ranks`` makes them; results.json's ``ranks``, ``straggler``,
``global_tokens_per_sec``)."""

from __future__ import annotations

from typing import Any

from gpt2_lightning.analysis.ranks import own_ms, straggler_sentence
from gpt2_lightning.report.formats import fmt_ms, fmt_rate

STAGE_HAS_COLLECTIVES = {"train": True, "inference": False}  # DDP all-reduces gradients; a forward pass syncs nothing


def sentence(exp: str, result: dict[str, Any]) -> str:
    """The straggler sentence, or that the ranks agree."""
    s = straggler_sentence(result.get("straggler"), STAGE_HAS_COLLECTIVES.get(exp, True))
    return s or "no straggler: the ranks' own times agree within noise"


def _global(result: dict[str, Any]) -> str:
    basis = result.get("global_rate") or {}
    slowest = (f" (the job's {basis['job_tokens_per_step']} tokens per step{_per_rank(result)} over rank "
               f"{basis['slowest_rank']}'s {fmt_ms(basis['slowest_step_ms'])})" if basis.get("slowest_step_ms") else "")
    return f"global {fmt_rate(result.get('global_tokens_per_sec'))} tokens/s{slowest}"


def _per_rank(result: dict[str, Any]) -> str:
    """", 128 per rank," (or each rank's, ", 128 / 120 by rank,", when they differ): the job's tokens are their sum."""
    tokens = [r.get("tokens") for r in result.get("ranks") or []]
    if not tokens or any(t is None for t in tokens):
        return ""
    return f", {tokens[0]} per rank," if len(set(tokens)) == 1 else f", {' / '.join(map(str, tokens))} by rank,"


def console_lines(exp: str, result: dict[str, Any], timed_phase: str) -> list[str]:
    if result.get("world_size", 1) <= 1 or not result.get("ranks"):
        return []
    medians = [r["phases"][timed_phase]["median_ms"] for r in result["ranks"]]
    waits = [r.get("waiting_ms") for r in result["ranks"]]
    wait_s = (", blocked in collectives " + " / ".join(fmt_ms(w) for w in waits)
              if any(w is not None for w in waits) else "")
    return [f"{exp}: world size {result['world_size']}, per-rank medians {' / '.join(fmt_ms(m) for m in medians)}"
            f"{wait_s}; {_global(result)}",
            f"{exp}: {sentence(exp, result)}"]


def markdown(exp: str, result: dict[str, Any]) -> list[str]:
    if result.get("world_size", 1) <= 1 or not result.get("ranks"):
        return []
    ranks = result["ranks"]
    phases = list(ranks[0]["phases"])
    out = ["", f"Per rank (world size {result['world_size']}; the tables above are rank 0's):", "",
           "| rank | " + " | ".join(phases) + " | blocked in collectives | own work | torch threads | tokens/step |",
           "|---|" + "---:|" * (len(phases) + 4)]
    timed = "step" if "step" in phases else "forward"
    out += [f"| {r['rank']} | " + " | ".join(fmt_ms((r["phases"].get(p) or {}).get("median_ms")) for p in phases)
            + f" | {fmt_ms(r.get('waiting_ms'))} | {fmt_ms(own_ms(r, timed))} | {r.get('torch_threads', 'n/a')} | "
              f"{r.get('tokens', 'n/a')} |" for r in ranks]
    said = sentence(exp, result)
    out += ["", "Own work: a rank's step less its time blocked in collectives (the straggler is the rank with the "
            "most).", "", f"- **{said[0].upper()}{said[1:]}.**",
            f"- Global throughput: {_global(result)[len('global '):]}: the job ends when its slowest rank ends."]
    rows = ((result.get("diagnosis") or {}).get("ranks")) or []
    if rows:
        out += ["", "Each rank's own trace (profiled steps; communication = time blocked in collectives: the "
                "collective ranges' wall time on a CPU, communication kernels on a GPU):", "",
                "| rank | trace | profiled step | communication per step | overlapped with compute |",
                "|---|---|---:|---:|---:|"]
        out += [_trace_row(r) for r in rows]
    unavailable = {r.get("wait_unavailable") for r in ranks} - {None}
    if unavailable:
        out.append(f"- Time blocked in collectives not measured: {'; '.join(sorted(unavailable))}.")
    return out


def _trace_row(r: dict[str, Any]) -> str:
    trace = f"`{r['trace']}`" if r.get("trace") else "n/a"
    overlapped = "n/a" if r.get("overlapped_pct") is None else f"{r['overlapped_pct']:.0f}%"
    return (f"| {r['rank']} | {trace} | {fmt_ms(r.get('profiled_step_ms'))} | "
            f"{fmt_ms(r.get('communication_ms_per_step'))} | {overlapped} |")
