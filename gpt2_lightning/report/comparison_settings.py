"""The first half of a comparison (compare.py): the settings that differ between the runs, what they share, and the
warnings that make a ratio mean less than it seems (a profiler, different experiments or shapes, several processes
and their straggler, a planted delay, an unstable or busy run)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from gpt2_lightning.analysis.ranks import excess_phrase
from gpt2_lightning.report.formats import fmt_ms, render_table
from gpt2_lightning.report.noise import instability_lines
from gpt2_lightning.report.profiled import counted_steps_profiler
from gpt2_lightning.report.results import shape


def model_setting(c: dict[str, Any], e: dict[str, Any]) -> Any:
    if c.get("module"):  # your own module: its class and its arguments are the model (another argument, another model)
        args = c.get("module_args")
        return c["module"] + (" " + json.dumps(args, sort_keys=True) if args else "")
    overrides = [f"{k}={c[k]}" for k in ("n_layer", "n_head", "n_embd", "vocab_size") if c.get(k) is not None]
    overrides += ["activation checkpointing"] if c.get("activation_checkpointing") else []
    return f"{c.get('model')} ({', '.join(overrides)})" if overrides else c.get("model")


def data_setting(c: dict[str, Any]) -> str:
    if c.get("datamodule"):
        args = c.get("datamodule_args")
        return c["datamodule"] + (" " + json.dumps(args, sort_keys=True) if args else "")
    return c.get("data") or ("the module's own" if c.get("module") else "synthetic")


def planted_delay(c: dict[str, Any]) -> str | None:
    """``--add-delay-ms``, a slowdown planted for checks, as a setting (None when there was none)."""
    ms = c.get("add_delay_ms")
    return f"{ms:g} ms per forward pass (--add-delay-ms)" if ms else None


def commit_text(e: dict[str, Any]) -> str:
    """The measured code: the git commit of the directory the run was made from, +dirty with uncommitted changes."""
    git = e.get("git") or {}
    return (git["commit"][:10] + ("+dirty" if git.get("dirty") else "")) if git.get("commit") else "-"


# (setting, how to read it from (config, env)); the list first, then what else can change a figure
SETTINGS: tuple[tuple[str, Callable[[dict[str, Any], dict[str, Any]], Any]], ...] = (
    ("made by", lambda c, e: "train.py" if "train" in c else "profile.py"),
    ("model", model_setting),
    ("precision", lambda c, e: c.get("precision")),
    ("batch size", lambda c, e: c.get("batch_size")),
    ("sequence length", lambda c, e: c.get("seq_len")),
    ("compile", lambda c, e: c.get("compile")),
    ("profiler", lambda c, e: c.get("profiler")),
    ("strategy", lambda c, e: c.get("strategy")),
    ("devices x nodes", lambda c, e: f"{c.get('devices')} x {c.get('num_nodes', 1)}"),
    ("device", lambda c, e: f"{e.get('device_type')}: {e.get('device_name')}"),
    ("torch", lambda c, e: e.get("torch")),
    ("lightning", lambda c, e: e.get("lightning")),
    ("data", lambda c, e: data_setting(c)),
    ("steps", lambda c, e: f"{c.get('warmup_steps')} warm-up + {c.get('steps')} timed"),
    ("planted delay", lambda c, e: planted_delay(c) or "none"),
    ("init on", lambda c, e: c.get("init_on")),
    ("torch threads", lambda c, e: e.get("torch_threads")),
    ("host", lambda c, e: e.get("hostname")),
    ("commit", lambda c, e: commit_text(e)),
)


def settings_table(runs: list[dict[str, Any]]) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]]]:
    """(settings that differ, each with every run's value; settings the runs share, with the shared value)."""
    differ, same = [], []
    for name, read in SETTINGS:
        values = [str(read(r.get("config", {}), r.get("env", {}))) for r in runs]
        if len(set(values)) > 1:
            differ.append((name, values))
        else:
            same.append((name, values[0]))
    return differ, same


def _measured(run: dict[str, Any]) -> list[str]:
    return [e for e, r in run.get("experiments", {}).items() if isinstance(r, dict) and "error" not in r]


def warnings_for(runs: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """What makes a ratio in the table mean less than it seems, one line each."""
    out = []
    profilers = [counted_steps_profiler(r) for r in runs]  # --profiler pytorch on a CPU: counted steps un-profiled
    if len(set(p == "none" for p in profilers)) > 1:
        profiled = ", ".join(f"{lab} (--profiler {p})" for lab, p in zip(labels, profilers) if p != "none")
        out.append(f"WARNING: {profiled} ran under a profiler and the others did not: the profiler's overhead is "
                   "inside its times. Compare runs made the same way.")
    measured = [_measured(r) for r in runs]
    if len({tuple(m) for m in measured}) > 1:
        each = "; ".join(f"{lab}: {', '.join(m) or 'nothing'}" for lab, m in zip(labels, measured))
        out.append(f"WARNING: the runs measured different experiments ({each}): a figure missing from a run shows "
                   "'-'.")
    tools = {"train" in r.get("config", {}) for r in runs}
    if len(tools) > 1:
        out.append("WARNING: train.py and profile.py runs are mixed: train.py's steps run on real data with "
                   "validation and checkpoints between them, profile.py's on synthetic tokens alone.")
    if shapes_differ(runs):
        out.append("WARNING: batch size or sequence length differ: a step or forward pass does a different amount "
                   "of work in each run, so compare tokens/s rather than times.")
    sizes = [max((int(x.get("world_size") or 1) for x in r.get("experiments", {}).values() if isinstance(x, dict)),
                 default=1) for r in runs]
    if len(set(sizes)) > 1:
        each = ", ".join(f"{lab}: {k}" for lab, k in zip(labels, sizes))
        out.append(f"WARNING: the runs ran different numbers of processes ({each}): the rows marked (rank 0) are per "
                   "process; 'tokens/s, whole job' is every rank's tokens over the slowest rank's time, and "
                   "'slowest rank' that rank's median.")
    planted = [f"{lab} ({planted_delay(r.get('config', {}))})" for lab, r in zip(labels, runs)
               if planted_delay(r.get("config", {}))]
    if planted:
        out.append(f"WARNING: {', '.join(planted)} ran with a planted slowdown, a sleep in every forward pass for "
                   "checking comparisons: never quote its figures as the code's.")
    out += straggler_lines(runs, labels)
    for lab, r in zip(labels, runs):
        if r.get("status") not in (None, "complete"):
            out.append(f"WARNING: {lab} is {r.get('status')}: some of its experiments did not finish.")
        out += [f"{lab}: {line}" for line in instability_lines(r)]
    return out


def straggler_lines(runs: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """The straggler each run of several processes named (results.json's ``straggler``), one line each."""
    out = []
    for lab, run in zip(labels, runs):
        for exp, x in run.get("experiments", {}).items():
            st = x.get("straggler") if isinstance(x, dict) else None
            if isinstance(st, dict) and st.get("rank") is not None:
                if st.get("excess_ms") is not None:
                    excess = excess_phrase(st, fmt_ms)
                else:
                    excess = f"in {st['phase']}" if st.get("phase") else ""
                out.append(f"{lab}: {exp}: rank {st['rank']} is the straggler ({excess}): the rows "
                           "'slowest rank' and 'whole job' read it, the (rank 0) rows do not.")
    return out


def format_settings(runs: list[dict[str, Any]], labels: list[str], markdown: bool = False) -> str:
    """The "settings that differ" block, then one line naming what every run shares."""
    differ, same = settings_table(runs)
    shared = "; ".join(f"{name} {value}" for name, value in same)
    title = "## Settings that differ" if markdown else "Settings that differ:"
    if differ:
        block = render_table(["setting", *labels], [[name, *values] for name, values in differ], markdown,
                             numbers=False)
    else:
        block = "none: the runs were made with the same settings, on the same device and versions"
    return f"{title}\n\n{block}\n\nSame in every run: {shared or 'nothing'}."


def shapes_differ(runs: list[dict[str, Any]]) -> bool:
    return len({shape(r) for r in runs}) > 1
