"""--sweep KEY=V1,V2,...: which keys can be swept, and one fully checked ProfileConfig per value.

``cfg`` is a ``profile.settings.ProfileConfig`` (not imported here: settings checks a sweep's form with these, and
the layout allows no import circle)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from gpt2_lightning.profile.config_error import ConfigError

SWEEP_KEYS = ("batch_size", "seq_len", "model", "precision", "compile", "devices")
ON, OFF = ("true", "on", "1", "yes"), ("false", "off", "0", "no")  # --sweep compile=off,on
ARGS_SWEEP_PREFIXES = ("module_args.", "datamodule_args.")  # --sweep module_args.n_layer=2,4: the module's own args


def sweep_values(cfg: Any) -> tuple[str, list[str]]:
    """(key, values) of --sweep KEY=V1,V2,...; ConfigError if malformed."""
    key, sep, raw = (cfg.sweep or "").partition("=")
    key = key.strip()
    prefix = next((p for p in ARGS_SWEEP_PREFIXES if key.startswith(p) and len(key) > len(p)), None)
    key = key if prefix else key.replace("-", "_")
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not sep or not (key in SWEEP_KEYS or prefix) or len(values) < 2 or len(set(values)) != len(values):
        raise ConfigError("sweep", cfg.sweep, f"KEY=V1,V2,... with KEY one of {', '.join(SWEEP_KEYS)}, or "
                                               "module_args.NAME / datamodule_args.NAME, and two or more distinct "
                                               "values")
    if prefix and not getattr(cfg, prefix.replace("_args.", "")):
        raise ConfigError("sweep", cfg.sweep, f"{prefix.rstrip('.')} needs --{prefix.replace('_args.', '')}")
    return key, values


def swept_value(cfg: Any, key: str) -> Any:
    """This config's value of a --sweep KEY (``module_args.n_layer`` reads inside --module-args)."""
    if "." in key:
        field_name, _, arg = key.partition(".")
        return (getattr(cfg, field_name) or {}).get(arg)
    return getattr(cfg, key)


def sweep_configs(cfg: Any) -> list[Any]:
    """One config per swept value, each fully checked (so a bad value fails before any work)."""
    key, values = sweep_values(cfg)
    configs = []
    for v in values:
        if key in ("batch_size", "seq_len"):
            if not v.lstrip("-").isdigit():
                raise ConfigError("sweep", cfg.sweep, f"{key} values must be integers, got {v!r}")
            change: dict[str, Any] = {key: int(v)}
        elif key == "compile":
            if v.lower() not in ON + OFF:
                raise ConfigError("sweep", cfg.sweep, f"compile values are on or off (true or false), got {v!r}")
            change = {key: v.lower() in ON}
        elif "." in key:  # one of the module's (or DataModule's) own arguments: a JSON value, else a string
            field_name, _, arg = key.partition(".")
            try:
                value: Any = json.loads(v)
            except ValueError:
                value = v
            change = {field_name: {**(getattr(cfg, field_name) or {}), arg: value}}
        else:
            change = {key: v}
        try:
            configs.append(dataclasses.replace(cfg, sweep=None, **change))
        except ConfigError as e:
            raise ConfigError("sweep", cfg.sweep, f"value {v!r} is invalid ({e})") from None
    return configs
