"""The built-in GPT-2 presets as a workload: FLOPs quoted by 6N + 12LdT, FlopCounterMode's count beside it."""

from __future__ import annotations

import dataclasses
from typing import Any

import lightning as L
import torch

from gpt2_lightning.profile.settings import ProfileConfig
from gpt2_lightning.profile.workload_base import Workload

GPT2_FORMULA = "6N + 12LdT (PaLM appendix B)"


class GPT2Workload(Workload):
    """The built-in GPT-2 presets: FLOPs quoted by 6N + 12LdT, FlopCounterMode's count (meta device) beside it."""

    class_name = "GPT2LightningModule"

    def __init__(self, cfg: ProfileConfig) -> None:
        super().__init__(cfg)
        self.name = cfg.model
        self.gpt = cfg.gpt_config()
        self._probe: L.LightningModule | None = None

    def make_module(self) -> L.LightningModule:
        from gpt2_lightning.module import GPT2LightningModule

        L.seed_everything(self.cfg.seed, verbose=False)  # same seed, same weights
        return GPT2LightningModule(self.gpt, init_on=self.cfg.init_on, compile=self.cfg.compile,
                                   float8=self.cfg.precision == "fp8")

    def make_datamodule(self, num_batches: int) -> L.LightningDataModule:
        """``num_batches`` batches for every process: with several, Lightning's sampler deals them out in turn.
        With --data, real tokens: training batches from train.bin, inference batches from val.bin."""
        from gpt2_lightning.data import SyntheticTokenDataModule, TokenFileDataModule

        cfg = self.cfg
        if cfg.data is not None:
            return TokenFileDataModule(cfg.data, cfg.seq_len, cfg.batch_size, seed=cfg.seed, val_batches=num_batches)
        return SyntheticTokenDataModule(self.gpt.vocab_size, cfg.seq_len, cfg.batch_size, seed=cfg.seed,
                                        num_batches=num_batches * cfg.world_size)

    def num_params(self) -> int:
        from gpt2_lightning.flops import num_params

        return num_params(self.gpt, non_embedding=False)

    def probe(self) -> L.LightningModule:
        """GPT-2 on the meta device: shapes only, built in milliseconds at any size."""
        if self._probe is None:
            from gpt2_lightning.module import GPT2LightningModule

            with torch.device("meta"):
                self._probe = GPT2LightningModule(self.gpt)
                self._probe.configure_model()
        return self._probe

    def probe_batch(self) -> Any:
        shape = (self.cfg.batch_size, self.cfg.seq_len)
        return (torch.zeros(shape, dtype=torch.long), torch.zeros(shape, dtype=torch.long))

    def batch_shape(self) -> tuple[int, int]:
        return self.cfg.batch_size, self.cfg.seq_len

    def flops_used(self) -> dict[str, Any]:
        from gpt2_lightning.flops import inference_flops_per_token, train_flops_per_token

        tokens = self.cfg.batch_size * self.cfg.seq_len
        m = self.measured_flops()
        return {"train": train_flops_per_token(self.gpt, self.cfg.seq_len) * tokens,
                "inference": inference_flops_per_token(self.gpt, self.cfg.seq_len) * tokens,
                "source": GPT2_FORMULA, "measured": {k: m.get(k) for k in ("train", "inference")}}

    def part_flops_per_token(self) -> dict[str, float] | None:
        from gpt2_lightning.flops import part_train_flops_per_token

        return part_train_flops_per_token(self.gpt, self.cfg.seq_len)

    def record(self) -> dict[str, Any]:
        return super().record() | {"gpt": dataclasses.asdict(self.gpt)}  # the full shape after presets, overrides
