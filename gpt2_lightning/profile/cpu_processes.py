"""CPU processes against the machine's cores: more than the cores run, oversubscribed, with a warning (Lightning runs
them); only an absurd count is refused. No torch here: it answers before any work."""

from __future__ import annotations

import os
import sys

from gpt2_lightning.cli_args import prog_name
from gpt2_lightning.profile.settings import ConfigError, ProfileConfig

MAX_PROCESSES_PER_CORE = 4  # beyond this, CPU processes (each with its own model copy) only measure the scheduler


def warn_oversubscribed(cfg: ProfileConfig, rank0: bool = True) -> None:
    """More CPU processes (times --threads) than cores: Lightning runs it, slower than the cores allow; say so once.
    Refused only past MAX_PROCESSES_PER_CORE processes per core (--devices 999 is a typo, not a plan)."""
    cores = os.cpu_count() or 1
    if cfg.trainer_devices > MAX_PROCESSES_PER_CORE * cores:
        raise ConfigError("devices", cfg.devices, f"this machine has {cores} CPU core(s); more than "
                                                  f"{MAX_PROCESSES_PER_CORE} processes per core measure nothing but "
                                                  f"the scheduler")
    wanted = cfg.trainer_devices * (cfg.threads or 1)
    if wanted > cores and rank0:
        print(f"{prog_name('scripts/profile.py')}: warning: --devices {cfg.devices}"
              f"{f' x --threads {cfg.threads}' if cfg.threads else ''} = {wanted} busy threads on {cores} CPU core(s): "
              f"the processes will take turns on the cores (oversubscribed), so every rank's figures are slower than "
              f"this machine's own", file=sys.stderr, flush=True)
