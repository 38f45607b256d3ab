"""What a ``--resume`` checkpoint holds, read before any work so that a wrong file or setting is one clear line.

Lightning would otherwise fail deep inside ``trainer.fit`` with a long traceback (a file that is not a checkpoint, a
model of another shape), or silently take a changed learning-rate schedule, whose cosine would then jump.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpt2_lightning.profile.settings import ConfigError


def inspect_checkpoint(path: str | Path) -> dict[str, Any]:
    """``{"step", "lr_decay_steps", "config"}`` of a checkpoint written by scripts/train.py; ConfigError otherwise."""
    path = Path(path)
    if not path.is_file():  # before loading torch (seconds): a mistyped path is refused at once
        raise ConfigError("resume", path, "no such checkpoint file")
    import torch

    try:
        # mmap: the tensors stay on disk; only the small dicts around them are read. Our own checkpoints hold more
        # than tensors (loop and callback states), so this is a full unpickling: resume only files you made.
        ckpt = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same one-line answer
        raise ConfigError("resume", path, f"not a Lightning checkpoint ({e.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or not {"state_dict", "global_step"} <= set(ckpt):
        raise ConfigError("resume", path, "not a Lightning checkpoint (no state_dict / global_step)")
    hparams = ckpt.get("hyper_parameters") or {}
    if not isinstance(hparams.get("config"), dict):
        raise ConfigError("resume", path, "not a checkpoint of this project's GPT-2 module (no model config)")
    return {"step": int(ckpt["global_step"]), "lr_decay_steps": hparams.get("lr_decay_steps"),
            "config": hparams["config"]}


def check_resume(info: dict[str, Any], args: Any, gpt_config: dict[str, Any], decay_given: bool) -> None:
    """Refuse a resume that cannot continue the run: another model shape, nothing left to train, or a changed
    --lr-decay-steps (unless --allow-schedule-change). A --lr-decay-steps left unset takes the checkpoint's."""
    shape_keys = ("n_layer", "n_head", "n_embd", "vocab_size", "block_size", "bias")
    theirs = {k: info["config"].get(k) for k in shape_keys}
    ours = {k: gpt_config.get(k) for k in shape_keys}
    if theirs != ours:
        diff = ", ".join(f"{k} {theirs[k]} (asked: {ours[k]})" for k in shape_keys if theirs[k] != ours[k])
        raise ConfigError("resume", args.resume, f"the checkpoint's model differs: {diff}")
    if args.max_steps <= info["step"]:
        raise ConfigError("max_steps", args.max_steps, f"the checkpoint is already at step {info['step']}: "
                                                        "nothing left to train")
    theirs_decay = info.get("lr_decay_steps")
    if theirs_decay is None:
        return
    if not decay_given:
        args.lr_decay_steps = theirs_decay
    elif args.lr_decay_steps != theirs_decay and not args.allow_schedule_change:
        raise ConfigError("lr_decay_steps", args.lr_decay_steps,
                          f"the checkpoint was trained with --lr-decay-steps {theirs_decay}; a change makes the cosine "
                          "jump (pass --allow-schedule-change to take it anyway)")
