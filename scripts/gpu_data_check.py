#!/usr/bin/env python
"""On a GPU: do the host clock and the device clock time the same intervals? A loader that takes 30 ms per batch (the
main process sleeps) under a tiny GPT-2, which the GPU keeps up with: both clocks' ``data`` must read about 30 ms.

    python scripts/gpu_data_check.py --out data-check.json      (scripts/gpu_checks.sh runs it and judges the figures)
"""

import argparse
import json
import sys
import time

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)
import torch
from torch.utils.data import DataLoader, IterableDataset

LOADER_MS = 30.0


class SlowTokens(IterableDataset):
    """(B, T) token batches, each after LOADER_MS of host time: a loader that is the slowest part of the step."""

    def __init__(self, vocab: int, batch: int, seq: int) -> None:
        self.vocab, self.batch, self.seq = vocab, batch, seq

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        while True:
            time.sleep(LOADER_MS / 1000.0)
            x = torch.randint(0, self.vocab, (self.batch, self.seq + 1), generator=g)
            yield x[:, :-1], x[:, 1:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where to write the figures (JSON)")
    parser.add_argument("--steps", type=int, default=10, help="counted steps (after 2 warm-up ones)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_data_check.py: needs a CUDA GPU", file=sys.stderr)
        return 2
    import lightning as L

    from callbacks import PhaseTimingCallback
    from gpt2_lightning import GPT2LightningModule, GPTConfig
    from gpt2_lightning.profile.quiet import quiet_lightning

    quiet_lightning(False)
    config = GPTConfig.from_name("tiny")
    timing = PhaseTimingCallback(warmup_steps=2)
    trainer = L.Trainer(accelerator="gpu", devices=1, max_steps=2 + args.steps, callbacks=[timing], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=0, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(GPT2LightningModule(config), DataLoader(SlowTokens(config.vocab_size, 2, 64), batch_size=None))
    device, host = timing.summary(), timing.host_summary()
    figures = {
        "loader_ms": LOADER_MS,
        "device_data_ms": device["data"]["median_ms"], "host_data_ms": host["phases"]["data"]["median_ms"],
        "device_step_ms": device["step"]["median_ms"], "host_step_ms": host["phases"]["step"]["median_ms"],
        "gpu_caught_up_steps": host["gpu_caught_up_steps"], "counted_steps": host["counted_steps"],
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=2)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
