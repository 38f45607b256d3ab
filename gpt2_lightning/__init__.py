"""GPT-2 with PyTorch Lightning, timed honestly.

The GPT-2 core lives here: ``config`` (presets), ``model`` (pure-torch GPT-2), ``module`` (its LightningModule),
``data`` (synthetic and token-file DataModules) and ``flops`` (FLOPs per token). Around it, one subpackage per
concern: ``analysis`` (trace reading and the verdict: plain Python), ``profile`` (scripts/profile.py), ``report``
(results.json, report.md, plots, TensorBoard, comparisons) and ``train`` (scripts/train.py); ``cli_args`` is the
command lines' shared front. Imports run one way: scripts -> profile/train -> report -> analysis.

Importing the package costs nothing: the public names below load torch and Lightning only when first used
(PEP 562), so ``--help`` and refusals of bad flags answer at once.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {  # name -> the module that defines it
    "GPT": "gpt2_lightning.model",
    "GPTConfig": "gpt2_lightning.config",
    "MODEL_NAMES": "gpt2_lightning.config",
    "GPT2LightningModule": "gpt2_lightning.module",
    "SyntheticTokenDataModule": "gpt2_lightning.data",
    "TokenFileDataModule": "gpt2_lightning.data",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # once loaded, a plain attribute
        return value
    raise AttributeError(f"module 'gpt2_lightning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
