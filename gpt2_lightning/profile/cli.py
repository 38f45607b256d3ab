"""``python scripts/profile.py`` / ``gpt2-profile``: time GPT-2's init, inference and training on one accelerator.

Exit codes: 0 success; 2 bad input (one line on stderr); 1 an experiment failed (e.g. out of memory: the others
still ran and results.json records it) or an unexpected error; 130 / 143 interrupted by SIGINT / SIGTERM (what was
measured is saved, marked incomplete).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import os
import sys
from pathlib import Path

from gpt2_lightning.cli_args import (EXIT_BAD_INPUT, EXIT_FAILED, HelpFormatter, UsageError, prog_name,
                                     raise_usage_errors)
from gpt2_lightning.profile.cpu_processes import warn_oversubscribed
from gpt2_lightning.profile.quiet import quiet_lightning
from gpt2_lightning.profile.module_settings import refuse_model_beside_module
from gpt2_lightning.profile.settings import ConfigError, ProfileConfig
from gpt2_lightning.profile.sweep_settings import sweep_configs, sweep_values, swept_value



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog_name("scripts/profile.py"), allow_abbrev=False,  # --step 3 is a typo, not --steps 3
        description="Time GPT-2 (or your own LightningModule, --module) honestly: model build, inference and\n"
        "training split into data / forward / backward / optimizer, on CPU or GPU. Writes <out>/<run-name>/: results.json, report.md, plots and\n"
        "TensorBoard logs.",
        epilog="examples:\n"
        "  %(prog)s --accelerator gpu   # the study: GPT-2 small, B8 x T1024, 5 timed steps\n"
        "  %(prog)s --accelerator cpu --model tiny --batch-size 2 --seq-len 64 --steps 3   # seconds\n"
        "  %(prog)s --accelerator cpu,gpu --run-name cpu-vs-gpu   # both, then a comparison\n"
        "  %(prog)s --sweep batch_size=4,8,16 --experiments train\n"
        "  %(prog)s --module examples/hf_llama.py:HFLlama --module-args '{\"layers\": 2}'   # your own model",
        formatter_class=HelpFormatter,
    )
    ProfileConfig.add_arguments(parser)
    return parser


def parse_configs(argv: list[str] | None) -> list[ProfileConfig]:
    """One ProfileConfig per accelerator: ``--accelerator cpu,gpu`` runs both, in that order, and compares them."""
    parser = raise_usage_errors(build_parser())
    ns = parser.parse_args(argv)
    accelerators = [a.strip() for a in ns.accelerator.split(",")]
    kinds = [{"cuda": "gpu"}.get(a, a) for a in accelerators]  # gpu and cuda are one device
    if len(set(kinds)) != len(kinds) or "" in kinds or (len(kinds) > 1 and "auto" in kinds):
        # auto in a list is one of the others (cpu,auto on a machine without a GPU compared the CPU with itself)
        raise ConfigError("accelerator", ns.accelerator, "a comma list of distinct accelerators, e.g. cpu,gpu "
                          "(auto only alone)")
    refuse_model_beside_module(ns.module, ns.model, sys.argv[1:] if argv is None else argv)
    return [ProfileConfig.from_namespace(ns, accelerator=a) for a in accelerators]


def check_environment(cfg: ProfileConfig) -> None:
    """What can only be checked on this machine: the --data directory, the device count, the accelerator, fp8.
    Cheapest first, and torch only where the answer needs it: a refusal comes in well under a second."""
    if cfg.data is not None:
        from gpt2_lightning.token_files import check_data

        check_data(cfg.data, cfg.seq_len, cfg.vocab_size)
    if cfg.accelerator == "cpu" and isinstance(cfg.trainer_devices, int):
        warn_oversubscribed(cfg, global_rank(cfg) == 0)
    if cfg.accelerator == "auto" and ("," in cfg.devices or cfg.precision == "16-mixed") and auto_is_cpu():
        cfg.check_cpu(why=" (where --accelerator auto runs here)")
    if cfg.strategy.strip().lower().startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError("strategy", cfg.strategy, "needs the deepspeed package, which is not installed here "
                          "(pip install deepspeed)")
    if cfg.accelerator in ("gpu", "cuda"):
        if no_nvidia_driver():
            raise ConfigError("accelerator", cfg.accelerator, "no CUDA GPU is available here; use --accelerator cpu")
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("accelerator", cfg.accelerator, "no CUDA GPU is available here; use --accelerator cpu")
        devices = cfg.trainer_devices
        if isinstance(devices, int) and devices > torch.cuda.device_count():
            raise ConfigError("devices", cfg.devices, f"only {torch.cuda.device_count()} CUDA device(s) here")
    if cfg.precision == "fp8":
        check_float8(cfg)
    if cfg.module:  # imports the class, builds it (and its data) once: a bad path, class or argument is one line
        from gpt2_lightning.profile.workload import workload_for

        workload_for(cfg)


def no_nvidia_driver() -> bool:
    """True when this Linux machine has no NVIDIA driver at all (no /dev/nvidiactl, no /proc/driver/nvidia): no CUDA
    GPU, known without loading torch (seconds). Elsewhere, or with a driver, torch decides."""
    return (sys.platform.startswith("linux") and not os.path.exists("/dev/nvidiactl")
            and not os.path.exists("/proc/driver/nvidia"))


def auto_is_cpu() -> bool:
    """True when Lightning's --accelerator auto would pick the CPU here: no CUDA GPU and no Apple GPU."""
    if no_nvidia_driver():
        return True
    import torch

    return not torch.cuda.is_available() and not torch.backends.mps.is_available()


FLOAT8_MIN_CAPABILITY = (8, 9)  # float8 tensor cores: Ada (L4, L40S, RTX 4090) and Hopper (H100, H200)


def check_float8(cfg: ProfileConfig) -> None:
    """--precision fp8 needs a CUDA GPU with float8 tensor cores and torchao, checked before any work."""
    import importlib.util

    import torch

    if cfg.accelerator == "cpu" or not torch.cuda.is_available():
        raise ConfigError("precision", "fp8", "needs a CUDA GPU of compute capability 8.9 or newer (L4, L40S, "
                                              "RTX 4090, H100, H200); this run has none")
    from gpt2_lightning.profile.device_startup import device_startup_ms, run_device

    device = run_device(cfg)
    device_startup_ms(device)  # asking for the capability brings CUDA up: time that start-up first, as every run does
    capability = torch.cuda.get_device_capability(device)
    if capability < FLOAT8_MIN_CAPABILITY:
        raise ConfigError("precision", "fp8", f"needs compute capability 8.9 or newer; "
                                              f"{torch.cuda.get_device_name(device)} is {capability[0]}.{capability[1]}")
    if importlib.util.find_spec("torchao") is None:
        raise ConfigError("precision", "fp8", "needs torchao (pip install -e \".[fp8]\")")


def make_run_dir(cfg: ProfileConfig) -> Path:
    """Create <out>/<run-name>; never reuse an existing directory."""
    name = cfg.run_name if cfg.run_name is not None else _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError("run_name", name, "must be a plain directory name")
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("out", cfg.out, f"cannot create it ({e.strerror or e})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError("out", cfg.out, "is not writable")
    candidate, n = out / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            if cfg.if_exists != "rename":
                raise ConfigError(
                    "run_name", name, f"{candidate} exists; pick another name or pass --if-exists rename"
                ) from None
            candidate, n = out / f"{name}-{n}", n + 1
        except OSError as e:
            raise ConfigError("out", cfg.out, f"cannot create the run directory ({e.strerror or e})") from None


def remove_failed_start(run_dir: Path) -> None:
    """Delete a run directory that a failed start left with nothing measured in it (no experiment with figures in
    any results.json below it, no checkpoint); a directory holding anything measured is kept, always."""
    import json
    import shutil

    def measured(results_file: Path) -> bool:
        try:
            experiments = json.loads(results_file.read_text(encoding="utf-8")).get("experiments") or {}
        except (OSError, ValueError, AttributeError):
            return True  # unreadable: keep it rather than guess
        return any(isinstance(r, dict) and r.get("phases") for r in experiments.values())

    files = [p for p in run_dir.rglob("*") if p.is_file()]
    if any(p.suffix == ".ckpt" or (p.name == "results.json" and measured(p)) for p in files):
        return
    shutil.rmtree(run_dir, ignore_errors=True)


RUN_DIR_ENV = "GPT2_PROFILE_RUN_DIR"  # rank 0 hands its run directory to the processes Lightning launches


def global_rank(cfg: ProfileConfig) -> int:
    """This process's rank in a multi-process run, from the launcher's environment (0 when alone)."""
    env = os.environ
    if "RANK" in env:  # torchrun
        return int(env["RANK"])
    if "SLURM_PROCID" in env and cfg.world_size > 1:
        return int(env["SLURM_PROCID"])
    devices = cfg.trainer_devices
    per_node = devices if isinstance(devices, int) else 1
    return int(env.get("NODE_RANK", env.get("GROUP_RANK", 0))) * per_node + int(env.get("LOCAL_RANK", 0))


def plan(argv: list[str] | None) -> tuple[list[ProfileConfig], list[Path], Path, str | None, bool]:
    """(configs, their run dirs, the parent run dir, the swept key or None, is rank 0), all checked first."""
    configs = parse_configs(argv)
    sweep_key = None
    if configs[0].sweep is not None:
        if len(configs) > 1:
            raise ConfigError("sweep", configs[0].sweep, "sweeps run on one accelerator; drop the comma list")
        sweep_key, _ = sweep_values(configs[0])
        configs = sweep_configs(configs[0])
    for cfg in configs:
        check_environment(cfg)
    if configs[0].repeat > 1 and configs[0].world_size > 1:
        raise ConfigError("repeat", configs[0].repeat, "repeats run one process each; with several devices or nodes, "
                                                       "run the command again instead")
    rank0 = global_rank(configs[0]) == 0
    launched_outside = RUN_DIR_ENV not in os.environ and any(
        k in os.environ for k in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "NODE_RANK")
    ) and configs[0].world_size > 1
    if launched_outside and not configs[0].run_name:
        raise ConfigError("run_name", None, "is required when torchrun, SLURM or several nodes start the processes: "
                                            "all of them must agree on one run directory")
    if rank0:
        run_dir = make_run_dir(configs[0])
        os.environ[RUN_DIR_ENV] = str(run_dir)
    else:  # a process Lightning (or torchrun, or SLURM) started: rank 0 makes the directory and writes in it
        run_dir = Path(os.environ.get(RUN_DIR_ENV) or Path(configs[0].out) / str(configs[0].run_name))
    if sweep_key is not None:
        from gpt2_lightning.profile.sweep import sweep_dir_name

        run_dirs = [run_dir / sweep_dir_name(sweep_key, swept_value(cfg, sweep_key)) for cfg in configs]
    elif len(configs) > 1:  # one sub-run per accelerator, compared in the parent
        run_dirs = [run_dir / cfg.accelerator for cfg in configs]
    else:
        run_dirs = [run_dir]
    return configs, run_dirs, run_dir, sweep_key, rank0


def main(argv: list[str] | None = None) -> int:
    from gpt2_lightning.token_files import DataError

    try:
        configs, run_dirs, run_dir, sweep_key, rank0 = plan(argv)
    except (UsageError, ConfigError, DataError) as e:
        print(f"{prog_name('scripts/profile.py')}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT

    quiet_lightning(configs[0].verbose)
    from gpt2_lightning.profile.interrupts import RunInterrupted, interruptible
    from gpt2_lightning.profile.run import run_profile
    from gpt2_lightning.profile.repeats import ChildFailed
    from gpt2_lightning.report.render import format_summary

    say = print if rank0 else (lambda *a, **k: None)  # one console, not one per process
    # repeats, sweep points and accelerators each in a fresh process (gpt2_lightning.profile.repeats), on one device
    # (a devices sweep: each point in its own process tree, that point's processes started by its first)
    fresh = rank0 and (configs[0].repeat > 1 or len(configs) > 1) and (configs[0].world_size == 1
                                                                       or sweep_key == "devices")
    if not fresh:
        from gpt2_lightning.profile.device_startup import device_startup_ms, run_device

        for device in {run_device(c) for c in configs}:  # this process's own device (each rank its own)
            device_startup_ms(device)  # first, so that `--accelerator cpu,gpu` times the GPU's start-up too
    runs, not_written = [], []
    try:
        with interruptible():
            if fresh:
                from gpt2_lightning.profile.repeats import measure_in_processes

                runs = measure_in_processes(configs, run_dirs, say)
            for i, (cfg, d) in enumerate(zip(configs, run_dirs)):
                if not fresh:
                    if rank0:
                        d.mkdir(exist_ok=True)
                    if len(configs) > 1:
                        say(f"=== {d.name} ===", file=sys.stderr, flush=True)
                    results = run_profile(cfg, d, write=rank0)
                    runs.append(results.to_dict())
                    not_written += results.not_written
                say(format_summary(runs[i]))
                say(f"\nresults: {d / 'results.json'}\n")
    except RunInterrupted as e:
        if rank0:
            from gpt2_lightning.profile.partial_runs import after_interrupt

            after_interrupt(e, configs, run_dirs, run_dir, sweep_key, say)  # a sweep's table; what each folder holds
        return e.exit_code
    except ChildFailed as e:  # the child printed its own error above
        say(f"profile.py: {e}; what was measured is in {run_dir}", file=sys.stderr)
        if rank0:
            for d in [*run_dirs, run_dir]:
                if d.is_dir():
                    remove_failed_start(d)
        return EXIT_FAILED
    except BaseException:
        if rank0:  # a failed start leaves no empty run directory behind; anything measured stays
            for d in [*run_dirs, run_dir]:
                if d.is_dir():
                    remove_failed_start(d)
        raise
    try:
        if rank0 and sweep_key is not None:
            from gpt2_lightning.profile.sweep import write_sweep

            points = [(swept_value(c, sweep_key), r) for c, r in zip(configs, runs)]
            table, files = write_sweep(sweep_key, points, run_dir)
            say(table + "\n\n" + "\n".join(f"wrote {f}" for f in files))
        elif rank0 and len(runs) > 1:
            from gpt2_lightning.report.compare import labels_for, write_comparison

            table, files = write_comparison(runs, labels_for(runs, [str(d) for d in run_dirs]), run_dir)
            say(table + "\n\n" + "\n".join(f"wrote {f}" for f in files))
    except OSError as e:  # a full disk: each run's results.json is already written
        from gpt2_lightning.report.atomic_files import write_failure

        not_written.append(write_failure(e.filename or run_dir, e))
        say(f"profile.py: {not_written[-1]}", file=sys.stderr)
    if rank0:
        from gpt2_lightning.report.next_steps import footer

        say(footer(run_dir, sweep=sweep_key is not None, compared=len(runs) > 1))
    failed = [f"{d.name}/{name}" for d, r in zip(run_dirs, runs) for name, x in r["experiments"].items()
              if "error" in x]
    if failed:
        say(f"profile.py: failed experiments: {', '.join(failed)} (see results.json)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED if not_written else 0


if __name__ == "__main__":
    sys.exit(main())
