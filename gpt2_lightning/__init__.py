"""GPT-2, its LightningModule and data, and the profiler's results and reports."""

from gpt2_lightning.config import MODEL_NAMES, GPTConfig
from gpt2_lightning.data import SyntheticTokenDataModule, TokenFileDataModule
from gpt2_lightning.model import GPT
from gpt2_lightning.module import GPT2LightningModule

__all__ = ["GPT", "GPTConfig", "GPT2LightningModule", "MODEL_NAMES", "SyntheticTokenDataModule", "TokenFileDataModule"]
__version__ = "0.1.0"
