"""One profile run: every experiment asked for, results saved after each, so nothing measured is lost."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from gpt2_lightning.experiments import EXPERIMENT_RUNNERS, apply_matmul_precision, resolve_device
from gpt2_lightning.flops import num_params
from gpt2_lightning.profile_config import ProfileConfig
from gpt2_lightning.run_report import write_report
from gpt2_lightning.results import RunResults, collect_env

RESULTS_FILE = "results.json"


def run_profile(cfg: ProfileConfig, run_dir: Path) -> RunResults:
    """Run cfg's experiments in order into run_dir; results.json is rewritten (atomically) after each one."""
    apply_matmul_precision(cfg)
    device = resolve_device(cfg.accelerator)
    gpt = cfg.gpt_config()
    config = cfg.to_dict() | {
        "run_dir": str(run_dir),
        "gpt": dataclasses.asdict(gpt),  # the model's full shape after presets and overrides
        "num_params": num_params(gpt, non_embedding=False),
    }
    results = RunResults(env=collect_env(device), config=config)
    path = run_dir / RESULTS_FILE
    results.save(path)
    for name in cfg.experiment_list:
        print(f"[{name}] running ...", file=sys.stderr, flush=True)
        results.experiments[name] = EXPERIMENT_RUNNERS[name](cfg, run_dir)
        results.save(path)
    results.status = "complete"
    finish(results, run_dir)
    return results


def finish(results: RunResults, run_dir: Path) -> None:
    """Save results.json, then the report, plots and TensorBoard summary made from it."""
    results.save(run_dir / RESULTS_FILE)
    write_report(results.to_dict(), run_dir)
