"""The settings of ``--module`` and its companions, checked without importing anything heavy: the forms of the class
paths, the JSON arguments (parsed into dicts in place), and the built-in GPT-2's own flags, refused beside --module.
Importing and building the classes is the workload's (``workload_module``), done by the CLI before any work."""

from __future__ import annotations

import json
from typing import Any

from gpt2_lightning.profile.config_error import ConfigError

GPT2_ONLY = ("n_layer", "n_head", "n_embd", "vocab_size", "data", "activation_checkpointing")  # refused with --module


def refuse_model_beside_module(module: str | None, model: Any, given: list[str]) -> None:
    """A --model among the command line's own arguments (``given``) beside --module: ConfigError (--model's default
    is always there, so only the flag as written tells)."""
    if module and any(a == "--model" or a.startswith("--model=") for a in given):
        raise ConfigError("model", model, "is the built-in GPT-2's preset, not --module's (give your module's own "
                                          "settings in --module-args)")


def check_module_settings(cfg: Any) -> None:
    """``cfg`` is a ProfileConfig (settings.py calls this from its checks). Raise ConfigError naming the flag for a malformed --module / --datamodule, arguments that are not a JSON object
    (or without their class), and GPT-2's own flags beside --module."""
    for name in ("module", "datamodule"):
        spec = getattr(cfg, name)
        if spec is not None and (spec.count(":") < 1 or not all(spec.rpartition(":")[::2])):
            raise ConfigError(name, spec, "PKG.MOD:CLASS or path/to/file.py:CLASS")
    for name in ("module_args", "datamodule_args"):
        value = getattr(cfg, name)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as e:
                raise ConfigError(name, value, f"is not JSON ({e})") from None
            if not isinstance(value, dict):
                raise ConfigError(name, getattr(cfg, name), "must be a JSON object, e.g. '{\"n_layer\": 2}'")
            setattr(cfg, name, value)
        owner = name.removesuffix("_args")
        if value is not None and not getattr(cfg, owner):
            raise ConfigError(name, json.dumps(value), f"needs --{owner}")
    if cfg.datamodule and not cfg.module:
        raise ConfigError("datamodule", cfg.datamodule, "needs --module (the built-in GPT-2 has its own data)")
    if cfg.module:
        for name in GPT2_ONLY:
            if getattr(cfg, name) not in (None, False):
                raise ConfigError(name, getattr(cfg, name), "is for the built-in GPT-2, not --module "
                                                              "(give your module's own settings in --module-args)")
        if cfg.precision == "fp8":
            raise ConfigError("precision", "fp8", "converts the built-in GPT-2's Linear layers; with --module, "
                                                  "convert yours in the module itself")
        if cfg.init_on != "device":
            raise ConfigError("init_on", cfg.init_on, "is for the built-in GPT-2; your module builds itself "
                                                       "where its constructor and configure_model say")
