"""Finding the user's classes: ``PKG.MOD:CLASS`` (importable from the current directory or PYTHONPATH) or
``path/to/file.py:CLASS``, checked to be a LightningModule / LightningDataModule, and built with JSON arguments.

Every refusal is a ``ConfigError`` naming the flag: the CLI prints it as one line and exits 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

from callbacks.failures import one_line
from gpt2_lightning.profile.quiet import import_noise_hidden
from gpt2_lightning.profile.settings import ConfigError


def load_class(flag: str, spec: str, base: type, verbose: bool = False) -> type:
    """The class ``spec`` names, which must subclass ``base``. What the libraries it imports warn about themselves
    (``quiet.IMPORT_NOISE_LOGGERS``) shows only with ``verbose``."""
    with import_noise_hidden(verbose):
        return _load_class(flag, spec, base)


def _load_class(flag: str, spec: str, base: type) -> type:
    target, _, name = spec.rpartition(":")
    try:
        if target.endswith(".py") or os.sep in target or "/" in target:
            if not os.path.isfile(target):
                raise ConfigError(flag, spec, f"{target}: no such file")
            mod_name = "_profiled_" + os.path.splitext(os.path.basename(target))[0]
            if mod_name not in sys.modules:
                file_spec = importlib.util.spec_from_file_location(mod_name, os.path.abspath(target))
                module = importlib.util.module_from_spec(file_spec)
                sys.modules[mod_name] = module  # before it runs: dataclasses and pickling look it up there
                try:
                    file_spec.loader.exec_module(module)
                except BaseException:
                    sys.modules.pop(mod_name, None)
                    raise
            module = sys.modules[mod_name]
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())  # as `python -m`: a package in the current directory imports
            module = importlib.import_module(target)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever importing the user's code raised: one line
        raise ConfigError(flag, spec, f"does not import ({one_line(e)})") from None
    cls = getattr(module, name, None)
    if cls is None:
        raise ConfigError(flag, spec, f"{target} has no {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(flag, spec, f"{name} is not a {base.__name__} subclass")
    return cls


def build(flag: str, cls: type, args: dict[str, Any], verbose: bool = False) -> Any:
    """``cls(**args)``; a refusal (a TypeError for an unknown argument, a ValueError of its own) is one line naming
    ``--{flag}-args``. A library the constructor imports late warns about itself only with ``verbose``."""
    try:
        with import_noise_hidden(verbose):
            return cls(**args)
    except Exception as e:  # noqa: BLE001 - the class refused its arguments
        raise ConfigError(f"{flag}_args", _json(args), f"{cls.__name__} refused them ({one_line(e)})") from None


def _json(args: dict[str, Any]) -> str:
    import json

    return json.dumps(args)
