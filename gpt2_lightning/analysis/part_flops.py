"""Each part's FLOPs for a model the tool does not know, from FlopCounterMode's per-module counts, and the rates they
give in the per-module breakdown (GFLOP/s over each part's time, % of the device's peak).

FlopCounterMode counts each module's FLOPs with its submodules' included; a breakdown row holds a module's own time
(its submodules have rows of their own). So each module keeps its count less those of its nearest counted submodules,
and the modules are grouped into parts as the breakdown groups them (``module_parts``). FlopCounterMode counts matrix
multiplications and attention only: a part with no counted FLOPs (norms, activations, residual adds) gets no rate.
Plain Python, no torch.
"""

from __future__ import annotations

from typing import Any

from gpt2_lightning.analysis.module_parts import generic_part, gpt2_part

COUNTED_PER_MODULE = "FlopCounterMode per module"


def own_flops(by_module: dict[str, float]) -> dict[str, float]:
    """{path: FLOPs with submodules included} -> {path: the module's own FLOPs}, never below 0."""
    own = dict(by_module)
    for path, flops in by_module.items():
        parts = path.split(".")
        for k in range(len(parts) - 1, 0, -1):  # the nearest counted ancestor holds this count too
            parent = ".".join(parts[:k])
            if parent in by_module:
                own[parent] -= flops
                break
    return {path: max(0.0, flops) for path, flops in own.items()}


def counted_part_flops(by_module: dict[str, float], classes: dict[str, str], grouping: str) -> dict[str, float]:
    """{part: FLOPs per step}: each module's own FLOPs in the part the breakdown puts it in (``grouping``: the
    breakdown's, "gpt2" or by module name and class)."""
    out: dict[str, float] = {}
    for path, flops in own_flops(by_module).items():
        if flops <= 0 or path not in classes:
            continue
        part = gpt2_part(path, "") if grouping == "gpt2" else generic_part(path, classes[path])
        out[part] = out.get(part, 0.0) + flops
    return out


def add_counted_flops(modules: dict[str, Any], part_flops: dict[str, float],
                      peak_tflops: float | None) -> dict[str, Any]:
    """Each row's ``flops_per_step`` (a folded "N other modules" row: its parts' sum), and where FLOPs were counted
    its achieved ``tflops`` over the row's time and ``pct_of_peak`` (null without a peak)."""
    if "parts" not in modules:
        return modules
    for row in modules["parts"]:
        names = row.get("folds") or [row["part"]]
        flops = sum(part_flops.get(name, 0.0) for name in names)
        if flops <= 0:
            continue
        seconds = row["total_ms"] / 1000.0
        tflops = flops / seconds / 1e12 if seconds > 0 else None
        row.update(flops_per_step=flops, matmul=True, tflops=tflops,
                   pct_of_peak=None if tflops is None or not peak_tflops else 100.0 * tflops / peak_tflops)
    modules.update(peak_tflops=peak_tflops, flops_source=COUNTED_PER_MODULE)
    return modules
