"""Two CPU processes (ddp, gloo) fit with EnergyCallback; rank ``--broken-rank`` cannot read its counters.

Run by tests/callbacks/test_energy.py as a script: the ddp strategy launches this command again for rank 1. Each
rank writes its energy result to ``<out>/rank-<r>.json``.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: callbacks/, tests/

from callbacks import EnergyCallback  # noqa: E402
from callbacks.energy_meters import EnergyUnavailable  # noqa: E402
from tests.helpers import CostlyModule, WallMeter, loader, sleep_ms, trainer  # noqa: E402


class BrokenMeter(WallMeter):
    def read(self):
        raise EnergyUnavailable("nvml: no NVIDIA driver to talk to (scripted, this rank only)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--broken-rank", type=int, required=True)
    args = p.parse_args()
    rank = int(os.environ.get("LOCAL_RANK", "0"))  # set by Lightning for the process it launches
    meter = BrokenMeter(100.0, "nvml") if rank == args.broken_rank else WallMeter(100.0, "nvml")
    energy = EnergyCallback(warmup_steps=1, counted_steps=3, min_window_s=0.05, meter=meter)
    module = CostlyModule(sleep_ms, forward_ms=2.0, backward_ms=2.0, optimizer_ms=1.0, warmup_steps=1, warmup_ms=2.0)
    t = trainer([energy], devices=2, strategy="ddp", max_steps=40)
    t.fit(module, loader(sleep_ms, data_ms=0.0, length=200))
    Path(args.out, f"rank-{t.global_rank}.json").write_text(json.dumps(energy.result))


if __name__ == "__main__":
    main()
