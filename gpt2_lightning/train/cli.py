"""``scripts/train.py`` / ``gpt2-train``: train GPT-2 on real tokens, timed by the same callbacks as the profiler.

    python scripts/prepare_data.py input.txt --tokenizer bytes --out data/mytext
    python scripts/train.py --data data/mytext --model tiny --max-steps 2000 --accelerator gpu
    python scripts/train.py --data data/mytext --model tiny --max-steps 4000 --resume runs/<run>/checkpoints/last.ckpt

Learning rate: linear warm-up over --lr-warmup-steps, then cosine decay to --min-lr at --lr-decay-steps (default
--max-steps). Gradients are clipped to --grad-clip (global norm) and accumulated over --accumulate batches per
optimizer step. Validation loss and perplexity every --val-every steps on the same --val-batches batches;
checkpoints every --checkpoint-every steps (and last.ckpt). --resume continues the step count, optimizer and scheduler state, and the data order.
Everything lands in <out>/<run-name>/: TensorBoard logs, checkpoints/, results.json, report.md.
"""

import argparse
import dataclasses
import math
import shlex
import sys

from gpt2_lightning.profile.cli import check_environment, make_run_dir, remove_failed_start
from gpt2_lightning.cli_args import EXIT_BAD_INPUT, HelpFormatter, UsageError, prog_name, raise_usage_errors
from gpt2_lightning.config import MODEL_NAMES
from gpt2_lightning.profile.module_settings import refuse_model_beside_module
from gpt2_lightning.profile.settings import ConfigError, ProfileConfig
from gpt2_lightning.profile.quiet import quiet_lightning
from gpt2_lightning.token_files import DataError


def build_parser() -> argparse.ArgumentParser:
    _, examples, schedule = __doc__.split("\n\n", 2)
    p = argparse.ArgumentParser(prog=prog_name("scripts/train.py"), allow_abbrev=False,
                                description="Train GPT-2 on real tokens, timed by the same callbacks as the profiler.",
                                epilog=f"examples:\n{examples}\n\n{schedule}", formatter_class=HelpFormatter)
    p.add_argument("--data", default=None, help="token directory made by scripts/prepare_data.py (default: none; "
                                                "required for the built-in GPT-2, a --module brings its own data)")
    p.add_argument("--module", default=None,
                   help="train your own LightningModule instead: PKG.MOD:CLASS or path/to/file.py:CLASS "
                        "(docs/own-model.md); its configure_optimizers and data rule, so --lr and the schedule flags "
                        "are GPT-2's only (default: the built-in GPT-2, --model)")
    p.add_argument("--module-args", default=None, help="its constructor arguments as a JSON object (default: the "
                                                       "class's own defaults)")
    p.add_argument("--datamodule", default=None, help="its LightningDataModule, PKG.MOD:CLASS or path/to/file.py:CLASS "
                                                      "(default: the module's own dataloaders)")
    p.add_argument("--datamodule-args", default=None, help="the DataModule's constructor arguments as a JSON object "
                                                           "(default: the class's own defaults)")
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="built-in GPT-2: recompute every block's activations in backward (less memory, more compute)")
    p.add_argument("--model", default="tiny", help=f"GPT-2 preset: {', '.join(MODEL_NAMES)}")
    for flag, what in (("--n-layer", "number of layers"), ("--n-head", "attention heads"), ("--n-embd", "width")):
        p.add_argument(flag, type=int, default=None, metavar="N",
                       help=f"override the preset's {what} (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="sequences per batch")
    p.add_argument("--seq-len", type=int, default=256, metavar="N",
                   help="tokens per sequence; at most the model's block_size")
    p.add_argument("--max-steps", type=int, default=1000, metavar="N",
                   help="optimizer steps in all (a resumed run counts on)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate, reached after --lr-warmup-steps")
    p.add_argument("--min-lr", type=float, default=None, help="final learning rate (default: --lr / 10)")
    p.add_argument("--lr-warmup-steps", type=int, default=100, metavar="N",
                   help="steps of linear warm-up from 0 to --lr; keep it below --max-steps")
    p.add_argument("--lr-decay-steps", type=int, default=None, metavar="N",
                   help="step at which the cosine reaches --min-lr (default: --max-steps); keep it when a run is "
                        "split into parts with --resume")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (not on biases and norms)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="global gradient norm limit; 0 turns clipping off")
    p.add_argument("--accumulate", type=int, default=1, metavar="N", help="batches per optimizer step")
    p.add_argument("--val-every", type=int, default=200, metavar="N", help="optimizer steps between validations")
    p.add_argument("--val-batches", type=int, default=8, metavar="N",
                   help="batches per validation (the same ones every time)")
    p.add_argument("--checkpoint-every", type=int, default=500, metavar="N", help="steps between checkpoints")
    p.add_argument("--resume", default=None, help="a checkpoint to continue from (default: start afresh)")
    p.add_argument("--allow-schedule-change", action="store_true",
                   help="with --resume: take a --lr-decay-steps other than the checkpoint's (the cosine jumps)")
    p.add_argument("--log-every", type=int, default=10, metavar="N", help="steps between loss / learning-rate log points")
    p.add_argument("--accelerator", default="auto", help="where to run: auto, cpu, gpu or cuda (as Lightning)")
    p.add_argument("--devices", default="1", help="devices per node: a count, 'auto' or a comma list of indices")
    p.add_argument("--strategy", default="auto", help="Lightning strategy: auto, ddp, fsdp, ...")
    p.add_argument("--precision", default="32-true",
                   help="Lightning precision (32-true, 16-mixed, bf16-mixed, bf16-true, ...), tf32, or fp8 (torchao "
                        "float8 Linear layers under bf16 autocast; a GPU of compute capability 8.9+)")
    p.add_argument("--out", default="runs", help="parent directory of run directories")
    p.add_argument("--run-name", default=None, help="run directory name under --out (default: a timestamp)")
    p.add_argument("--if-exists", default="error",
                   help="when the run directory exists: 'error' (exit 2) or 'rename' (add a -N suffix)")
    p.add_argument("--warmup-steps", type=int, default=2, metavar="N",
                   help="steps the timing callbacks do not count (not the learning-rate warm-up)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help=ProfileConfig.__dataclass_fields__["threads"].metadata["help"])  # profile.py's, word for word
    p.add_argument("--seed", type=int, default=1337, metavar="N", help="seed for model init and the data order")
    p.add_argument("--compile", action="store_true", help="run the model through torch.compile")
    p.add_argument("--verbose", action="store_true", help="show Lightning's own messages and warnings")
    return p


def warn_schedule(args: argparse.Namespace) -> str | None:
    """A warm-up as long as the run leaves the learning rate short of --lr, or at it only on the last step. None with
    --module: its own configure_optimizers sets the rate, and --lr and the schedule flags do not reach it."""
    if args.module is not None or args.lr_warmup_steps < args.max_steps:
        return None
    peak = args.lr * args.max_steps / args.lr_warmup_steps
    what = ("reaches --lr only at the last step and never decays" if args.lr_warmup_steps == args.max_steps
            else f"never reaches --lr {args.lr:g}: it stops at {peak:.3g}")
    return (f"warning: --lr-warmup-steps {args.lr_warmup_steps} >= --max-steps {args.max_steps}: the learning rate "
            f"{what}; use a shorter --lr-warmup-steps")


def parse(argv):
    parser = raise_usage_errors(build_parser())
    args = parser.parse_args(argv)
    decay_given = args.lr_decay_steps is not None
    if not decay_given:
        args.lr_decay_steps = args.max_steps
    for name in ("max_steps", "lr_decay_steps", "accumulate", "val_every", "val_batches", "checkpoint_every", "log_every"):
        if getattr(args, name) <= 0:
            raise ConfigError(name, getattr(args, name), "must be a positive integer")
    for name in ("lr_warmup_steps", "grad_clip", "weight_decay"):
        if getattr(args, name) < 0:
            raise ConfigError(name, getattr(args, name), "must be 0 or more")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ConfigError("lr", args.lr, "must be positive")
    if args.min_lr is not None and not (math.isfinite(args.min_lr) and 0 <= args.min_lr <= args.lr):
        raise ConfigError("min_lr", args.min_lr, f"must be between 0 and --lr {args.lr:g} (the cosine decays to it)")
    if args.data is None and args.module is None:
        raise ConfigError("data", None, "is required: a token directory made by scripts/prepare_data.py (or give "
                                        "--module to train your own model on its own data)")
    refuse_model_beside_module(args.module, args.model, sys.argv[1:] if argv is None else argv)
    if args.module is not None and args.resume is not None:
        raise ConfigError("resume", args.resume, "resumes the built-in GPT-2 only; with --module, continue with "
                                                 "Lightning's own ckpt_path in your code")
    # the settings shared with the profiler are checked by its config
    cfg = ProfileConfig(
        module=args.module, module_args=args.module_args, datamodule=args.datamodule,
        datamodule_args=args.datamodule_args, activation_checkpointing=args.activation_checkpointing,
        accelerator=args.accelerator, devices=args.devices, strategy=args.strategy, precision=args.precision,
        model=args.model, n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, batch_size=args.batch_size,
        seq_len=args.seq_len, warmup_steps=args.warmup_steps, steps=max(1, args.max_steps - args.warmup_steps),
        compile=args.compile, threads=args.threads,
        out=args.out, run_name=args.run_name, if_exists=args.if_exists, seed=args.seed, verbose=args.verbose,
        data=args.data, experiments="train",
    )
    resume = None
    if args.resume is not None:
        from gpt2_lightning.train.checkpoints import check_resume, inspect_checkpoint

        resume = inspect_checkpoint(args.resume)
        check_resume(resume, args, dataclasses.asdict(cfg.gpt_config()), decay_given)
    to_run = args.max_steps - (resume["step"] if resume else 0)  # a resumed run counts on from its checkpoint
    if args.warmup_steps >= to_run:  # else every step is warm-up: no figure, and "complete"
        raise ConfigError("warmup_steps", args.warmup_steps, f"must be below the {to_run} step(s) this run trains "
                                                             "(--max-steps): warm-up steps are never timed")
    return args, cfg, resume


def main(argv=None) -> int:
    try:
        args, cfg, resume = parse(argv)
        check_environment(cfg)  # the accelerator, and the data directory
        run_dir = make_run_dir(cfg)
    except (UsageError, ConfigError, DataError) as e:
        print(f"{prog_name('scripts/train.py')}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    warning = warn_schedule(args)  # only once the run is sure to start: a refusal is the one line it prints
    if warning:
        print(f"{prog_name('scripts/train.py')}: {warning}", file=sys.stderr)
    quiet_lightning(cfg.verbose)
    from gpt2_lightning.profile.interrupts import RunInterrupted, interruptible
    from gpt2_lightning.train.run import train

    if resume is not None:
        print(f"resumed from step {resume['step']} ({args.resume}); training to step {args.max_steps}",
              file=sys.stderr, flush=True)
    try:
        with interruptible():
            results = train(cfg, args, run_dir, resume)
    except RunInterrupted as e:
        print(f"train.py: {interrupted_message(e, run_dir, resumable=args.module is None)}", file=sys.stderr)
        return e.exit_code
    except BaseException:
        remove_failed_start(run_dir)  # nothing measured, nothing saved: leave no empty run directory behind
        raise
    from gpt2_lightning.report.render import format_summary

    print(format_summary(results.to_dict()))
    print(training_lines(results.experiments["train"]))
    from gpt2_lightning.report.next_steps import footer

    print(f"results: {run_dir / 'results.json'}\ncheckpoints: {run_dir / 'checkpoints'}")
    print(footer(run_dir, tool="train.py", resumable=args.module is None))  # --resume: the built-in GPT-2's only
    return 1 if results.not_written else 0  # a file a full disk refused: said above, results.json has the figures


def interrupted_message(e, run_dir, resumable: bool = True) -> str:
    """Where the run stopped, what results.json keeps, and which step ``last.ckpt`` holds (to resume from; with
    --module, ``resumable=False``, through Lightning's ckpt_path: train.py's --resume is the built-in GPT-2's)."""
    results = getattr(e, "results", None)
    train = results.experiments.get("train", {}) if results is not None else {}
    at = f" at step {train['global_step']}" if train.get("global_step") is not None else ""
    counted = (train.get("phases", {}).get("step") or {}).get("n") or 0
    text = f"interrupted by {e}{at}; {run_dir / 'results.json'} holds the {counted} timed step(s) before it (marked " \
           "interrupted)"
    if train.get("last_checkpoint") and not resumable:
        text += (f"; {train['last_checkpoint']} holds step {train['last_checkpoint_step']}: continue with Lightning's "
                 "trainer.fit(..., ckpt_path=...) in your own code")
    elif train.get("last_checkpoint"):
        text += (f"; {train['last_checkpoint']} holds step {train['last_checkpoint_step']}: resume with --resume "
                 f"{shlex.quote(str(train['last_checkpoint']))}")
    else:
        text += "; no checkpoint was written before it"
    return text


def training_lines(train: dict) -> str:
    """What the run learned and where its time went: train and validation loss, first to last; fit's wall time."""
    lines = [""]
    if train.get("resumed_from"):
        lines.append(f"resumed from step {train['resumed_from']['step']}")
    from gpt2_lightning.report.training import train_loss_line

    line = train_loss_line(train.get("train_loss") or [])  # means over logged steps, not two single batches
    if line:
        lines.append(line)
    values = train.get("val_loss") or []
    if values:
        lines.append(f"validation loss: {values[0]['loss']:.4f} at step {values[0]['step']} -> "
                     f"{values[-1]['loss']:.4f} at step {values[-1]['step']}")
    if train.get("fit"):
        from gpt2_lightning.report.timing import fit_text

        lines.append(fit_text(train["fit"]))
    return "\n".join(lines)

