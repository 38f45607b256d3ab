"""The read side of PhaseTimingCallback: medians and spreads of what it recorded, warm-up and extra steps excluded."""

from __future__ import annotations

from typing import Any

from .step_records import StepRecord, WindowRecord
from .stats import summarize

TRAIN_PHASES = ("data", "forward", "backward", "optimizer", "step")
WINDOW_PHASES = ("checkpoint", "validation")
INFERENCE_PHASES = ("forward",)
INIT_PHASES = ("init", "init_model", "init_optimizer")


class PhaseSummaries:
    """Summaries over ``records``, ``windows``, ``init_records`` and ``fit_wall_ms`` (set by the callback)."""

    records: list[StepRecord]
    windows: list[WindowRecord]
    init_records: list[dict[str, float]]
    warmup_inits: int
    fit_wall_ms: float | None

    def counted(self, stage: str = "train") -> list[StepRecord]:
        return [r for r in self.records if r.stage == stage and r.counted]

    def summary(self, stage: str = "train") -> dict[str, dict[str, float | int]]:
        """``{phase: STATS}`` for a stage ("train", "predict", "validate", "test" or "init"), warm-up excluded.

        For "train", ``checkpoint`` and ``validation`` STATS (with ``total_ms``) are added when they ran inside fit.
        """
        if stage == "init":
            counted = self.init_records[self.warmup_inits :]
            return {p: summarize(r[p] for r in counted if p in r) for p in INIT_PHASES}
        phases = TRAIN_PHASES if stage == "train" else INFERENCE_PHASES
        counted = self.counted(stage)
        out = {p: summarize(r.phases[p] for r in counted if p in r.phases) for p in phases}
        if stage == "train":
            for kind in WINDOW_PHASES:
                values = [w.ms for w in self.windows if w.kind == kind]
                if values:
                    out[kind] = summarize(values) | {"total_ms": sum(values)}
        return out

    def host_summary(self, stage: str = "train") -> dict[str, Any]:
        """Host-clock STATS of each phase beside the device's, and in how many counted steps the GPU had caught up
        with the host (it had finished the previous step before this one began: it waited for the host). CUDA only:
        ``{}`` on the CPU, where the host clock is the device clock."""
        counted = [r for r in self.counted(stage) if r.host]
        if not counted:
            return {}
        phases = {p: summarize(r.host[p] for r in counted if p in r.host) for p in counted[0].host}
        seen = [r.caught_up for r in counted if r.caught_up is not None]
        return {"phases": phases, "gpu_caught_up_steps": sum(seen), "counted_steps": len(seen)}

    def fit_summary(self) -> dict[str, float] | None:
        """fit's wall time against the sum of its steps, its validation and its checkpoints (warm-up included)."""
        if not self.fit_wall_ms:
            return None
        parts = {"steps_ms": sum(r.phases.get("step", 0.0) for r in self.records if r.stage == "train")}
        for kind in WINDOW_PHASES:
            parts[f"{kind}_ms"] = sum(w.ms for w in self.windows if w.kind == kind)
        parts["other_ms"] = max(0.0, self.fit_wall_ms - sum(parts.values()))
        shares = {k.replace("_ms", "_pct"): 100.0 * v / self.fit_wall_ms for k, v in parts.items()}
        return {"wall_ms": self.fit_wall_ms, **parts, **shares}

    def naive_summary(self, stage: str = "predict") -> dict[str, float | int]:
        """STATS of what an unsynchronised host timer read for the same inference batches."""
        return summarize(r.naive_ms for r in self.counted(stage) if r.naive_ms is not None)

    def warmup_records(self, stage: str = "train") -> list[StepRecord]:
        return [r for r in self.records if r.stage == stage and r.warmup]

