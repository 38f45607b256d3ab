"""One profile run: every experiment asked for, results saved after each, so nothing measured is lost.

An experiment that runs out of memory is recorded as failed and the others still run. A SIGINT or SIGTERM ends the
run between or inside experiments: what was measured is written, marked incomplete (the experiment under way keeps
the steps it timed before the signal, summarised and marked ``interrupted``), and ``RunInterrupted`` carries the signal
up so the CLI exits 128 + signal number (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import sys
from pathlib import Path

from gpt2_lightning.report.costs import add_costs
from gpt2_lightning.profile.energy import idle_power
from gpt2_lightning.profile.device_startup import run_device
from gpt2_lightning.profile.environment import measured_env
from gpt2_lightning.profile.estimate import say_estimate
from gpt2_lightning.profile.experiments import EXPERIMENT_RUNNERS
from gpt2_lightning.profile.trainers import apply_process_settings, free_device_memory
from gpt2_lightning.profile.interrupts import RunInterrupted, check
from gpt2_lightning.profile.machine import Contention
from gpt2_lightning.profile.settings import ProfileConfig
from gpt2_lightning.profile.workload import workload_for
from gpt2_lightning.report.atomic_files import write_failure
from gpt2_lightning.report.results import RunResults
from gpt2_lightning.report.run_report import write_report

RESULTS_FILE = "results.json"


def is_out_of_memory(e: BaseException) -> bool:
    import torch

    if isinstance(e, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def oom_message(cfg: ProfileConfig, name: str) -> str:
    model = cfg.module or cfg.model
    return (
        f"{name}: out of memory with --batch-size {cfg.batch_size} --seq-len {cfg.seq_len} "
        f"({model}, {cfg.precision}); try a smaller --batch-size or --seq-len, --precision bf16-mixed, "
        f"or activation checkpointing"
    )


def run_profile(cfg: ProfileConfig, run_dir: Path, write: bool = True) -> RunResults:
    """Run cfg's experiments in order into run_dir; results.json is rewritten (atomically) after each one.

    ``write=False`` on the other processes of a multi-process run: they run every experiment (the collectives
    need them) and rank 0 alone writes.
    """
    apply_process_settings(cfg)  # before anything runs, so that env records them
    device = run_device(cfg)  # this process's own device: cuda:2 for rank 1 of --devices 1,2
    if cfg.memory_snapshot and device.type != "cuda" and write:
        print("profile.py: --memory-snapshot records CUDA allocations: nothing is recorded on the CPU",
              file=sys.stderr, flush=True)
    env = measured_env(device)
    if write:  # a long CPU run says so, and what to run instead, before it starts
        env["estimate"] = say_estimate(cfg, device.type, lambda line: print(line, file=sys.stderr, flush=True))
    if not cfg.no_energy and {"inference", "train"} & set(cfg.experiment_list):
        env["idle_power"] = idle_power(cfg)  # before the first experiment, while nothing runs
    workload = workload_for(cfg)
    # the model's name, class, parameters, batch shape and repeated layers (GPT-2: its full shape, "gpt")
    config = cfg.to_dict() | {"run_dir": str(run_dir)} | workload.record()
    results = RunResults(env=env, config=config)
    save_now = (lambda: save(results, run_dir)) if write else (lambda: None)
    save_now()
    current = None
    try:
        for current in cfg.experiment_list:
            if write:
                print(f"[{current}] running ...", file=sys.stderr, flush=True)
            results.experiments[current] = _run_one(cfg, current, run_dir)
            add_costs(results.experiments[current], current, config)  # $ per million tokens, time to train
            if current == "init" and "error" not in results.experiments[current]:
                results.experiments[current]["device_startup_ms"] = env["device_startup_ms"]
            save_now()
            check()
        current = None
    except RunInterrupted as e:
        if current is not None:  # the steps it measured before the signal, summarised, or why there are none
            partial = getattr(e, "partial", None)
            results.experiments[current] = partial if partial is not None else {
                "error": f"interrupted by {e} before it finished", "interrupted": True}
        results.status = "incomplete"
        results.interrupted_by = str(e)
        if write:
            finish(results, run_dir)
        raise
    failed = [n for n, r in results.experiments.items() if "error" in r]
    results.status = "failed" if failed else "complete"
    if write:
        finish(results, run_dir)
    return results


def _run_one(cfg: ProfileConfig, name: str, run_dir: Path) -> dict:
    why = workload_for(cfg).cannot_run(name)
    if why is not None:  # e.g. a module without predict_step or forward: no inference
        print(f"profile.py: {name}: skipped: {why}", file=sys.stderr, flush=True)
        return {"skipped": why}
    contention = Contention().start()  # what kept the process waiting, for the noise warnings
    try:
        result = EXPERIMENT_RUNNERS[name](cfg, run_dir)
        result["machine"] = contention.result()
        return result
    except Exception as e:  # noqa: BLE001 - only out-of-memory is handled; everything else propagates
        if not is_out_of_memory(e):
            raise
        message = oom_message(cfg, name)
        snapshot = run_dir / f"memory-{name}.pickle"  # MemorySnapshotCallback writes it on out-of-memory
        if cfg.memory_snapshot and snapshot.exists():
            message += f"; allocation history up to the failure: {snapshot.name} (open it at pytorch.org/memory_viz)"
        e.__traceback__ = None  # the frames it holds keep the model and activations alive
    free_device_memory()
    print(f"profile.py: {message}", file=sys.stderr, flush=True)
    return {"error": message, "error_type": "out_of_memory"}


def save(results: RunResults, run_dir: Path) -> None:
    """Save results.json; a file that cannot be written (a full disk) is one line on stderr, once, and the run goes
    on: its figures are still printed at the end."""
    try:
        results.save(run_dir / RESULTS_FILE)
    except OSError as e:
        report_not_written(results, [write_failure(run_dir / RESULTS_FILE, e)])


def report_not_written(results: RunResults, lines: list[str]) -> None:
    tool = "train.py" if "train" in results.config else "profile.py"
    for line in lines:
        if line not in results.not_written:
            print(f"{tool}: {line}", file=sys.stderr, flush=True)
            results.not_written.append(line)


def finish(results: RunResults, run_dir: Path) -> None:
    """Save results.json, then the report, plots and TensorBoard summary made from it; what cannot be written is
    one line each on stderr and in ``results.not_written`` (the CLI then exits 1)."""
    save(results, run_dir)
    report_not_written(results, write_report(results.to_dict(), run_dir))
