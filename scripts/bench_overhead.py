#!/usr/bin/env python
"""What does the profiled Lightning run cost over a plain PyTorch loop? Same model, data and settings, one process.

    python scripts/bench_overhead.py --accelerator gpu --model gpt2 --precision bf16-mixed --batch-size 16

Rounds alternate: a plain loop (forward, backward, fused AdamW, nothing else), then the profiled Lightning run
(Trainer + PhaseTimingCallback + ThroughputCallback + TensorBoard logger, exactly as profile.py's train
experiment), then the plain loop again, ... Both are timed by the same DeviceTimer, step end to step end, with the
same warm-up excluded. It prints both medians and their ratio (profiled / plain: 1.00 means the profiler costs
nothing) and writes them as JSON with --out.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)
import torch

from callbacks import DeviceTimer, PhaseTimingCallback, ThroughputCallback
from callbacks.timing import percentile, summarize
from gpt2_lightning.profile.cli import check_environment
from gpt2_lightning.profile.quiet import quiet_lightning
from gpt2_lightning.profile.experiments import make_logger
from gpt2_lightning.profile.trainers import apply_matmul_precision, make_datamodule, make_module, make_trainer, resolve_device
from gpt2_lightning.model import GPT
from gpt2_lightning.profile.settings import ConfigError, ProfileConfig

AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
WEIGHT_DTYPE = {"bf16-true": torch.bfloat16, "16-true": torch.float16, "64-true": torch.float64}


def plain_round(cfg: ProfileConfig, device: torch.device) -> list[float]:
    """One round of the plain loop; per-step milliseconds, warm-up steps dropped."""
    torch.manual_seed(cfg.seed)
    dtype = WEIGHT_DTYPE.get(cfg.precision, torch.float32)
    with torch.device(device):
        model = GPT(cfg.gpt_config()).to(dtype)
    if cfg.compile:
        model.compile()
    module = make_module(cfg)  # only for its optimizer recipe: same groups, same fused AdamW
    module.model = model
    optimizer = module.configure_optimizers()
    pool = make_datamodule(cfg, cfg.warmup_steps + cfg.steps).batch_pool(pin_memory=device.type == "cuda")
    autocast = AUTOCAST.get(cfg.precision)
    timer = DeviceTimer(device)
    marks = [timer.mark()]
    for i in range(cfg.warmup_steps + cfg.steps):
        x, y = pool[i]
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        marks.append(timer.mark())
    times = timer.resolve(zip(marks, marks[1:]))
    del model, optimizer, module
    return times[cfg.warmup_steps:]


def lightning_round(cfg: ProfileConfig, log_dir: Path, i: int) -> list[float]:
    """One round of the profiled Lightning run, as profile.py's train experiment builds it."""
    timing = PhaseTimingCallback(warmup_steps=cfg.warmup_steps)
    n = cfg.warmup_steps + cfg.steps
    trainer = make_trainer(cfg, [timing, ThroughputCallback(timing)], logger=make_logger(log_dir, f"round{i}"),
                           max_steps=n)
    trainer.fit(make_module(cfg), datamodule=make_datamodule(cfg, n))
    return [r.phases["step"] for r in timing.records if r.stage == "train" and not r.warmup]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench_overhead.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--model", default="gpt2")
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed steps at the start of every round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each, alternating")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out", default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        cfg = ProfileConfig(accelerator=args.accelerator, model=args.model, precision=args.precision,
                            batch_size=args.batch_size, seq_len=args.seq_len, steps=args.steps,
                            warmup_steps=args.warmup_steps, compile=args.compile)
        if args.rounds < 1:
            raise ConfigError("rounds", args.rounds, "must be at least 1")
        if cfg.precision == "fp8":
            raise ConfigError("precision", "fp8", "the plain loop has no float8 path; compare fp8 with profile.py runs")
        check_environment(cfg)
    except ConfigError as e:
        print(f"bench_overhead.py: error: {e}", file=sys.stderr)
        return 2
    quiet_lightning(verbose=False)
    apply_matmul_precision(cfg)
    device = resolve_device(cfg.accelerator)
    plain, profiled = [], []
    with tempfile.TemporaryDirectory() as log_dir:
        for i in range(args.rounds):
            plain.append(plain_round(cfg, device))
            profiled.append(lightning_round(cfg, Path(log_dir), i))
            print(f"round {i}: plain {percentile(sorted(plain[-1]), 50):.3f} ms, "
                  f"profiled Lightning {percentile(sorted(profiled[-1]), 50):.3f} ms", file=sys.stderr, flush=True)
    # median of the per-round medians: a round that the machine disturbed weighs no more than any other
    med = lambda rounds: percentile(sorted(percentile(sorted(r), 50) for r in rounds), 50)  # noqa: E731
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "settings": vars(args),
        "plain_step_ms": med(plain),
        "profiled_step_ms": med(profiled),
        "ratio": med(profiled) / med(plain),
        "plain_steps": summarize(x for r in plain for x in r),
        "profiled_steps": summarize(x for r in profiled for x in r),
        "tokens_per_sec_plain": args.batch_size * args.seq_len / (med(plain) / 1000.0),
        "tokens_per_sec_profiled": args.batch_size * args.seq_len / (med(profiled) / 1000.0),
    }
    print(f"{cfg.model} {cfg.precision} B{cfg.batch_size}xT{cfg.seq_len} on {result['device']}"
          f"{' compiled' if cfg.compile else ''}: plain loop {result['plain_step_ms']:.3f} ms/step, "
          f"profiled Lightning {result['profiled_step_ms']:.3f} ms/step, ratio {result['ratio']:.4f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
