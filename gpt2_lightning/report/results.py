"""The results of a run: schema, environment, atomic JSON save and checked load.

results.json (schema_version 1)::

    {"schema_version": 1, "status": "complete" | "incomplete", "env": {...}, "config": {...},
     "experiments": {"init": {"phases": {"init": STATS, ...}, ...},
                     "inference": {"phases": {"forward": STATS}, "naive_ms": ..., "throughput": THR, "memory": MEM},
                     "train": {"phases": {"data", "forward", "backward", "optimizer", "step": STATS},
                               "throughput": THR, "memory": MEM}}}

An experiment that failed holds {"error": "..."} instead of its figures.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt2_lightning.report.atomic_files import atomic_write_text  # noqa: F401 - imported from here too
from gpt2_lightning.report.judgement import WORK_DIFFERS, figure_range, judge
from gpt2_lightning.report.noise import TIMED_PHASE, repeat_count

SCHEMA_VERSION = 1


class ResultsError(ValueError):
    """A results file that cannot be read as ours; the message is one line naming the file."""


@dataclass
class RunResults:
    env: dict[str, Any]
    config: dict[str, Any]
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "incomplete"  # "complete": all ran; "failed": some recorded an error; "incomplete": stopped early
    interrupted_by: str | None = None  # the signal that stopped the run, if one did
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION
    not_written: list[str] = field(default_factory=list, repr=False)  # files a full disk refused (never saved)
    repeats: list[dict[str, Any]] | None = None  # --repeat N: every repeat's own figures (repeat_summary.py)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "status": self.status,
            "interrupted_by": self.interrupted_by,
            "created": self.created,
            "env": self.env,
            "config": self.config,
            "experiments": self.experiments,
        } | ({"repeats": self.repeats} if self.repeats is not None else {})

    def save(self, path: str | os.PathLike) -> None:
        """JSON as the standard has it: a figure that is not a finite number (a NaN loss of a run that diverged, an
        infinite rate over a zero time) is written as null, never as NaN, which other tools cannot read (and
        ``allow_nan=False`` once made such a run end in a traceback with its measured steps unsaved)."""
        atomic_write_text(path, json.dumps(finite_or_null(self.to_dict()), indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RunResults":
        """Read a results.json; any problem is a ResultsError with a one-line message."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ResultsError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ResultsError(f"{path}: cannot read ({e.__class__.__name__})") from None
        try:
            data = finite_or_null(json.loads(text))  # NaN or Infinity (other tools, hand edits): not measured
        except json.JSONDecodeError as e:
            raise ResultsError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); truncated?") from None
        if not isinstance(data, dict) or "schema_version" not in data or not isinstance(data.get("experiments"), dict):
            raise ResultsError(f"{path}: not a gpt2-lightning-profiler results file (no schema_version/experiments)")
        if data["schema_version"] != SCHEMA_VERSION:
            raise ResultsError(f"{path}: schema_version {data['schema_version']!r}, this tool reads {SCHEMA_VERSION}")
        return cls(
            env=data.get("env", {}),
            config=data.get("config", {}),
            experiments=data["experiments"],
            status=data.get("status", "incomplete"),
            interrupted_by=data.get("interrupted_by"),
            created=data.get("created", ""),
            repeats=data.get("repeats"),
        )


def finite_or_null(x: Any) -> Any:
    """``x`` with every float that is NaN or infinite replaced by None, in nested dicts and lists."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite_or_null(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_null(v) for v in x]
    return x


# ---------------------------------------------------------------------------------------------------- comparison
# With several processes (world_size > 1) the experiment's own figures are rank 0's; two rows read the whole job: its
# rate (``global_tokens_per_sec``: every rank's tokens over the slowest rank's time) and the slowest rank's timed unit
# (the largest median over ``ranks``), so that a slow rank moves a comparison and can fail the gate.
JOB_RATE = ("global_tokens_per_sec",)
SLOWEST_RANK = ("ranks", "*slowest*")
# (label, experiment, where the figure is, lower is better?)
COMPARED: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("init: build + optimizer", "init", ("phases", "init", "median_ms"), True),
    ("inference: forward pass", "inference", ("phases", "forward", "median_ms"), True),
    ("inference: forward pass, slowest rank", "inference", SLOWEST_RANK, True),
    ("train: step", "train", ("phases", "step", "median_ms"), True),
    ("train: step, slowest rank", "train", SLOWEST_RANK, True),
    ("  train: data", "train", ("phases", "data", "median_ms"), True),
    ("  train: forward", "train", ("phases", "forward", "median_ms"), True),
    ("  train: backward", "train", ("phases", "backward", "median_ms"), True),
    ("  train: optimizer", "train", ("phases", "optimizer", "median_ms"), True),
    ("inference: tokens/s", "inference", ("throughput", "tokens_per_sec"), False),
    ("train: tokens/s", "train", ("throughput", "tokens_per_sec"), False),
    ("inference: tokens/s, whole job", "inference", JOB_RATE, False),
    ("train: tokens/s, whole job", "train", JOB_RATE, False),
    ("inference: time per token", "inference", ("throughput", "tokens_per_sec"), True),
    ("train: time per token", "train", ("throughput", "tokens_per_sec"), True),
    ("train: MFU %", "train", ("throughput", "mfu_pct"), False),
    ("inference: J/token", "inference", ("energy", "joules_per_token"), True),
    ("train: J/token", "train", ("energy", "joules_per_token"), True),
    ("inference: tokens/kWh", "inference", ("energy", "tokens_per_kwh"), False),
    ("train: tokens/kWh", "train", ("energy", "tokens_per_kwh"), False),
    ("inference: $/M tokens", "inference", ("cost", "usd_per_million_tokens"), True),
    ("train: $/M tokens", "train", ("cost", "usd_per_million_tokens"), True),
    ("train: $/M tokens (energy)", "train", ("cost", "usd_per_million_tokens_energy"), True),
)
WHOLE_JOB = (JOB_RATE, SLOWEST_RANK)  # rows shown only beside a run of several processes
# rows whose figures are not milliseconds (the rest: ms when lower is better, a plain rate otherwise)
UNITS = {"inference: time per token": "us", "train: time per token": "us", "inference: J/token": "J",
         "train: J/token": "J", "inference: $/M tokens": "$", "train: $/M tokens": "$",
         "train: $/M tokens (energy)": "$"}
PER_TOKEN = ("inference: time per token", "train: time per token")  # microseconds: 1e6 / tokens per second


def dig(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` inside nested dicts, or None where any key is missing."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def measured_number(x: Any) -> float | None:
    """A figure as a number, or None: not measured (missing, not a number, NaN or infinite: never judged)."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def run_label(data: dict[str, Any], fallback: str) -> str:
    """A short column name for a run: its directory name (the device and settings go in the comparison's
    "settings that differ" block, not in every column header)."""
    run_dir = data.get("config", {}).get("run_dir") or fallback
    return Path(run_dir).name or fallback


def world_size(result: dict[str, Any]) -> int:
    """How many processes measured an experiment (1 when it does not say)."""
    try:
        return max(int(result.get("world_size") or 1), 1)
    except (TypeError, ValueError):
        return 1


def job_rate(result: dict[str, Any]) -> Any:
    """The whole job's tokens/s: every rank's tokens over the slowest rank's time (``global_tokens_per_sec``) where
    several processes ran, else the one process's own rate."""
    return dig(result, JOB_RATE) if world_size(result) > 1 else dig(result, ("throughput", "tokens_per_sec"))


def slowest_rank(exp: str, result: dict[str, Any]) -> dict[str, Any] | None:
    """STATS of the timed unit of the slowest rank (the largest median), None without per-rank figures."""
    ranks = [r for r in result.get("ranks") or [] if isinstance(r, dict)]
    stats = [dig(r, ("phases", TIMED_PHASE.get(exp, ""))) for r in ranks]
    stats = [s for s in stats if isinstance(s, dict) and measured_number(s.get("median_ms"))]
    return max(stats, key=lambda s: s["median_ms"]) if stats else None


def _stats_path(exp: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """Where the STATS behind a compared figure are: a phase's own for its median, the timed phase's for a rate over
    the median step (tokens/s, TFLOP/s, MFU); None for figures with no per-step spread."""
    if path and path[-1] == "median_ms":
        return path[:-1]
    if path and path[0] == "throughput" and exp in TIMED_PHASE:
        return ("phases", TIMED_PHASE[exp])
    return None


def _figure(exp: str, path: tuple[str, ...], result: dict[str, Any]) -> tuple[Any, dict[str, Any] | None, bool]:
    """(value, the STATS it rests on, whether it has a spread at all) of one compared figure of one experiment.

    The whole job's rows read a single process's own figure where only one ran (its own rate is all of the job's);
    the job's rate rests on the slowest rank's time, the rank-0 figures where no ranks were kept (repeats)."""
    timed = dig(result, ("phases", TIMED_PHASE.get(exp, "")))
    if path == SLOWEST_RANK:
        stats = slowest_rank(exp, result) if world_size(result) > 1 else timed
        return (stats or {}).get("median_ms"), stats, True
    if path == JOB_RATE:
        return job_rate(result), (slowest_rank(exp, result) if world_size(result) > 1 else None) or timed, True
    stats_path = _stats_path(exp, path)
    return dig(result, path), dig(result, stats_path) if stats_path else None, stats_path is not None


def _value_range(value: float | None, stats: dict[str, Any] | None, lower_is_better: bool, repeats: int
                 ) -> tuple[float, float] | None:
    """The range of a figure: a time's own (between repeats, or its steps' p10-p90), a rate's over that time's."""
    rng = figure_range(stats, repeats) if value is not None else None
    if rng is None or not stats.get("median_ms"):
        return None
    if lower_is_better:  # a time, or a time per token: it scales with the time
        return value * rng[0] / stats["median_ms"], value * rng[1] / stats["median_ms"]
    return value * stats["median_ms"] / rng[1], value * stats["median_ms"] / rng[0]


def shape(run: dict[str, Any]) -> tuple[Any, Any]:
    """(batch size, sequence length): the work of one step or forward pass."""
    return run.get("config", {}).get("batch_size"), run.get("config", {}).get("seq_len")


WORK_DIFFERS_NOTE = "the batch shapes differ, so the work does: judged on tokens/s"


def compare(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the comparison: each figure for every run, and each run's speed-up over the first, with its spread.

    Speed-up is first/this for times (and joules, dollars) and this/first for rates, so above 1 always means faster
    (or less energy, or cheaper) than the first run. A figure missing from either run, or not a finite number, gives a
    None speed-up, never a guess. Each row also holds every figure's range (``ranges``: between repeats for a
    repeated run, else p10-p90 of its steps), and for each later run the judgement of
    gpt2_lightning.report.judgement: the speed-up's range (``speedup_ranges``), ``noise`` ("within noise", "beyond
    noise" or None: not judged), ``basis`` ("repeats" or "steps": between-run noise unknown), ``notes`` (why not
    judged, or a minimum effect that held a verdict back), ``why`` (what kept it from a judgement, for the gate's
    advice) and ``counts`` (the repeats judged on each side); ``has_spread`` is False for figures measured once per
    run (energy over one window, cost), which have no spread at all; ``ran`` whether each run measured the
    experiment (a figure missing from a run that did is not measured, not failed). When the batch shapes differ the
    time rows of inference and training are not judged (a step does different work): their rates are. ``key`` is the
    row's name whatever the runs; ``label`` adds "(rank 0)" to the per-process rows of runs of several processes.
    """
    devices = [r.get("env", {}).get("device_type") for r in runs]
    rows = []
    for label, exp, path, lower_is_better in COMPARED:
        results = [r.get("experiments", {}).get(exp) for r in runs]
        results = [x if isinstance(x, dict) else {} for x in results]
        several = any(world_size(x) > 1 for x in results)
        if path in WHOLE_JOB and not several:  # one process everywhere: rank 0's figures are the job's
            continue
        figures = [_figure(exp, path, x) for x in results]
        values = [measured_number(v) for v, _, _ in figures]
        if label in PER_TOKEN:  # time per token: the inverse of the rate over the median step
            values = [1e6 / v if v else None for v in values]
        if all(v is None for v in values):
            continue
        stats = [st for _, st, _ in figures]
        has_spread = figures[0][2]
        base = values[0]
        speedups = []
        for v in values:
            if base is None or v is None or base == 0 or v == 0:
                speedups.append(None)
            else:
                speedups.append(base / v if lower_is_better else v / base)
        judged = [judge(s, stats[0], st, results[0], x, exp, [devices[0], d]) if i and has_spread else None
                  for i, (s, st, x, d) in enumerate(zip(speedups, stats, results, devices))]
        if lower_is_better and label not in PER_TOKEN and exp in ("inference", "train"):
            for i, j in enumerate(judged):  # a time of different work: not judged; the rates are
                if j and shape(runs[i]) != shape(runs[0]):
                    j.update(verdict=None, range=None, note=WORK_DIFFERS_NOTE, why=WORK_DIFFERS)
        rank0 = several and path not in WHOLE_JOB and exp in ("inference", "train")
        rows.append({"key": label, "label": label + (" (rank 0)" if rank0 else ""), "experiment": exp,
                     "values": values, "speedups": speedups,
                     "unit": UNITS.get(label, "ms" if lower_is_better else ""), "lower_is_better": lower_is_better,
                     "ranges": [_value_range(v, st, lower_is_better, repeat_count(x))
                                for v, st, x in zip(values, stats, results)],
                     "speedup_ranges": [j and j["range"] for j in judged],
                     "noise": [j and j["verdict"] for j in judged],
                     "basis": [j and j["basis"] for j in judged], "notes": [j and j["note"] for j in judged],
                     "why": [j and j["why"] for j in judged], "counts": [j and j["counts"] for j in judged],
                     "has_spread": has_spread, "ran": [bool(x.get("phases")) and "error" not in x for x in results]})
    return rows
