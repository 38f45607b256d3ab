"""The workload: what the study (profile.py, train.py) needs of a model, and nothing about GPT-2 itself.

A workload builds a fresh LightningModule and the data for it, names the model and counts its parameters for titles,
counts a batch's tokens (the rule of ``callbacks.step_records.count_batch``: a batch's attention_mask when it has
one), gives the FLOPs of a training step and of an inference forward (counted by FlopCounterMode, ``flop_count``),
and lists the model's repeated layers (a ModuleList of one class, like ``h.N`` or ``layers.N``) for the per-block view.
Two kinds: ``GPT2Workload`` (the built-in presets, which also quote 6N + 12LdT) and ``ModuleWorkload``
(``--module PKG.MOD:CLASS``). The experiments ask ``workload_for(cfg)`` and never which kind they hold.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden

from callbacks.step_records import count_batch
from gpt2_lightning.profile.flop_count import count_flops
from gpt2_lightning.profile.settings import ConfigError, ProfileConfig

GPT2_FORMULA = "6N + 12LdT (PaLM appendix B)"
COUNTED = "FlopCounterMode"


class Workload:
    """What every workload gives; see the module's docstring."""

    name: str = ""  # for titles, tables and labels: the preset's name or the module's class
    class_name: str = ""

    def __init__(self, cfg: ProfileConfig) -> None:
        self.cfg = cfg
        self._flops: dict[str, Any] | None = None

    # ---------------------------------------------------------------- building
    def make_module(self) -> L.LightningModule:
        raise NotImplementedError

    def make_datamodule(self, num_batches: int) -> L.LightningDataModule:
        raise NotImplementedError

    def cannot_run(self, experiment: str) -> str | None:
        """Why this model cannot run ``experiment`` (init, inference, train), or None."""
        return None

    # ---------------------------------------------------------------- what the figures need
    def num_params(self) -> int:
        raise NotImplementedError

    def probe(self) -> L.LightningModule:
        """A module never timed: for counting (parameters, FLOPs, layers)."""
        raise NotImplementedError

    def probe_batch(self) -> Any:
        """One training batch, as the data gives it (on the host)."""
        return next(iter(self.make_datamodule(1).train_dataloader()))

    def batch_shape(self) -> tuple[int, int]:
        """(batch size, sequence length) of a batch: its first tensor's first two dimensions."""
        count = count_batch(self.probe_batch())
        shape = count.shape or (0,)
        return shape[0], (shape[1] if len(shape) > 1 else 1)

    def tokens_per_batch(self, batch: Any) -> int | None:
        """Real tokens of a batch, by the callbacks' rule (non-padding where the batch has an attention_mask)."""
        return count_batch(batch).tokens

    def measured_flops(self) -> dict[str, Any]:
        """FLOPs of one training step (forward + backward) and one inference forward of a probe batch, counted once
        by FlopCounterMode on a throwaway copy; ``error`` says why a count is missing."""
        if self._flops is None:
            out: dict[str, Any] = {"batch_shape": list(self.batch_shape())}
            batch = self.probe_batch()
            for key, training in (("train", True), ("inference", False)):
                if self.cannot_run(key) is not None:
                    out[key] = None
                    continue
                try:
                    out[key], out["counted_on"] = count_flops(self.probe(), batch, training)
                except Exception as e:  # noqa: BLE001 - a model that cannot be counted: TFLOP/s unknown, said why
                    out[key] = None
                    out[f"{key}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            self._flops = out
        return self._flops

    def flops_used(self) -> dict[str, Any]:
        """The FLOPs per step that TFLOP/s and MFU use, by experiment, and their source (``flops_source``)."""
        m = self.measured_flops()
        return {"train": m.get("train"), "inference": m.get("inference"), "source": COUNTED,
                "measured": {k: m.get(k) for k in ("train", "inference")}}

    def flops_per_batch(self, batch_size: int, seq_len: int, training: bool = True) -> float | None:
        """FLOPs of a batch of this shape: the counted step's, scaled by its tokens (B x T) where the shape differs
        (a short last batch)."""
        used = self.flops_used()["train" if training else "inference"]
        if used is None:
            return None
        b, t = self.batch_shape()
        return used * (batch_size * seq_len) / (b * t)

    def repeated_layers(self) -> list[dict[str, Any]]:
        """Every ModuleList of two or more modules of one class: ``{"name", "count", "class"}``, outermost first."""
        return repeated_layers(self.probe())

    def part_flops_per_token(self) -> dict[str, float] | None:
        """The formula's FLOPs per token by model part, where the workload knows its parts (GPT-2); else None."""
        return None

    def record(self) -> dict[str, Any]:
        """What results.json's ``config`` adds for this model."""
        b, t = self.batch_shape()
        return {"model": self.name, "model_class": self.class_name, "num_params": self.num_params(),
                "batch_size": b, "seq_len": t, "repeated_layers": self.repeated_layers(),
                "flops_counted": self.measured_flops()}  # counted here, before any experiment is timed

    def attach_flops(self, module: L.LightningModule) -> None:
        """Give ``module`` the ``flops_per_batch`` that ThroughputCallback reads, unless its class has its own."""
        if not callable(getattr(type(module), "flops_per_batch", None)):
            used = self.flops_used()
            if used["train"] is not None or used["inference"] is not None:
                object.__setattr__(module, "flops_per_batch",
                                   lambda b, t, training=True: self.flops_per_batch(b, t, training) or 0.0)


def repeated_layers(module: torch.nn.Module) -> list[dict[str, Any]]:
    out = []
    for name, child in module.named_modules():
        if isinstance(child, torch.nn.ModuleList) and len(child) >= 2:
            kinds = {type(m) for m in child}
            if len(kinds) == 1:
                out.append({"name": name, "count": len(child), "class": next(iter(kinds)).__name__})
    return out


# -------------------------------------------------------------------------------------------- built-in GPT-2


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


# -------------------------------------------------------------------------------------------- --module


class _Batches:
    """Exactly ``n`` batches of a loader, going round it again when it is shorter (the study needs warm-up + counted
    steps whatever the loader's length); a new iterator of the loader each time round."""

    def __init__(self, loader: Any, n: int) -> None:
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(itertools.chain.from_iterable(iter(self.loader) for _ in itertools.count()), self.n)


class StudyData(L.LightningDataModule):
    """The user's data as the study drives it: ``num_batches`` training batches, and predict batches from the
    ``predict_dataloader`` when there is one, else from the training one. ``source`` is the user's DataModule or,
    without --datamodule, the module's own dataloaders."""

    def __init__(self, source: Any, num_batches: int) -> None:
        super().__init__()
        self.source, self.num_batches = source, num_batches

    def prepare_data(self) -> None:
        if isinstance(self.source, L.LightningDataModule):
            self.source.prepare_data()

    def setup(self, stage: str) -> None:
        if isinstance(self.source, L.LightningDataModule):
            self.source.setup(stage)

    def train_dataloader(self) -> Any:
        return _Batches(self.source.train_dataloader(), self.num_batches)

    def predict_dataloader(self) -> Any:
        has_predict = _overrides(self.source, "predict_dataloader")
        loader = self.source.predict_dataloader() if has_predict else self.source.train_dataloader()
        return _Batches(loader, self.num_batches)


def _overrides(obj: Any, method: str) -> bool:
    """Whether ``obj``'s class defines ``method`` itself rather than inheriting Lightning's default."""
    base = L.LightningDataModule if isinstance(obj, L.LightningDataModule) else L.LightningModule
    return is_overridden(method, obj, parent=base)


class ModuleWorkload(Workload):
    """``--module PKG.MOD:CLASS [--module-args JSON] [--datamodule PKG.MOD:CLASS] [--datamodule-args JSON]``.

    The DataModule is given ``batch_size`` / ``seq_len`` (``--batch-size`` / ``--seq-len``) and ``num_batches`` when
    its constructor takes them and --datamodule-args does not set them. Without --datamodule, the module's own
    dataloaders. A probe instance (CPU, never timed) is built once per process for counting."""

    def __init__(self, cfg: ProfileConfig) -> None:
        from gpt2_lightning.profile.user_classes import build, load_class

        super().__init__(cfg)
        self.module_cls = load_class("module", cfg.module, L.LightningModule)
        self.data_cls = load_class("datamodule", cfg.datamodule, L.LightningDataModule) if cfg.datamodule else None
        self.name = self.class_name = self.module_cls.__name__
        L.seed_everything(cfg.seed, verbose=False)
        self._probe = build("module", self.module_cls, dict(cfg.module_args or {}))
        if _overrides(self._probe, "configure_model"):
            self._probe.configure_model()  # a module that builds its layers there: count them too
        self._data_probe = self.make_datamodule(1)  # refuses bad --datamodule-args, or a module without data
        try:
            self._batch = next(iter(self._data_probe.train_dataloader()))
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - the user's data could not give a batch
            raise ConfigError("datamodule" if self.data_cls else "module", cfg.datamodule or cfg.module,
                              f"its train_dataloader gave no batch ({type(e).__name__}: {e})") from None

    def _data_kwargs(self, num_batches: int) -> dict[str, Any]:
        kwargs = dict(self.cfg.datamodule_args or {})
        for key, value in (("batch_size", self.cfg.batch_size), ("seq_len", self.cfg.seq_len),
                           ("num_batches", num_batches)):
            if key not in kwargs and key in _named_params(self.data_cls):
                kwargs[key] = value
        return kwargs

    def make_module(self) -> L.LightningModule:
        from gpt2_lightning.profile.user_classes import build

        L.seed_everything(self.cfg.seed, verbose=False)  # same seed, same weights
        module = build("module", self.module_cls, dict(self.cfg.module_args or {}))
        if self.cfg.compile:  # each direct child compiled in place: training_step calls them, not self()
            for child in module.children():
                child.compile(dynamic=False)
        self.attach_flops(module)
        return module

    def user_datamodule(self, num_batches: int) -> L.LightningDataModule | None:
        """The user's DataModule as built (train.py trains on it as it is), or None: the module's own dataloaders."""
        from gpt2_lightning.profile.user_classes import build

        if self.data_cls is not None:
            source = build("datamodule", self.data_cls, self._data_kwargs(num_batches))
            if not _overrides(source, "train_dataloader"):
                raise ConfigError("datamodule", self.cfg.datamodule, "defines no train_dataloader")
            return source
        if not _overrides(self._probe, "train_dataloader"):
            raise ConfigError("module", self.cfg.module, "has no train_dataloader: give --datamodule "
                                                         "PKG.MOD:CLASS, or define train_dataloader in it")
        return None

    def can_validate(self) -> bool:
        """Whether train.py can validate: a validation_step, and a val_dataloader in the data or the module."""
        source = self.data_cls if self.data_cls is not None else self.module_cls
        base = L.LightningDataModule if self.data_cls is not None else L.LightningModule
        return _overrides(self._probe, "validation_step") and getattr(source, "val_dataloader") is not getattr(
            base, "val_dataloader")

    def make_datamodule(self, num_batches: int) -> L.LightningDataModule:
        source = self.user_datamodule(num_batches)
        return StudyData(self._probe if source is None else source, num_batches * self.cfg.world_size)

    def cannot_run(self, experiment: str) -> str | None:
        p = self._probe
        if experiment in ("init", "train"):
            missing = [m for m in ("training_step", "configure_optimizers") if not _overrides(p, m)]
            if missing:
                return f"{self.name} defines no {' and no '.join(missing)}"
        if experiment == "inference" and not (_overrides(p, "predict_step") or _overrides(p, "forward")):
            return f"{self.name} defines neither predict_step nor forward"
        return None

    def num_params(self) -> int:
        return sum(p.numel() for p in self._probe.parameters())

    def probe(self) -> L.LightningModule:
        return self._probe

    def probe_batch(self) -> Any:
        return self._batch


def _named_params(cls: type) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return set()


def flops_fields(cfg: ProfileConfig, experiment: str, batches_per_step: int = 1) -> dict[str, Any]:
    """THR's FLOPs keys for an experiment: ``flops_source`` (which count TFLOP/s and MFU use), ``flops_per_step``
    (that count for one step: ``batches_per_step`` batches of the probe's shape) and ``flops_counted_per_step``
    (FlopCounterMode's, shown beside the formula for GPT-2); ``flops_note`` says why a count is missing."""
    key = "train" if experiment == "train" else "inference"
    used = workload_for(cfg).flops_used()

    def per_step(value: float | None) -> float | None:
        return None if value is None else value * batches_per_step

    out = {"flops_source": used["source"] if used[key] is not None else None, "flops_per_step": per_step(used[key]),
           "flops_counted_per_step": per_step(used["measured"].get(key))}
    error = workload_for(cfg).measured_flops().get(f"{key}_error")
    if error:
        out["flops_note"] = f"FlopCounterMode could not count this model's step: {error}"
    return out


_cache: dict[str, Workload] = {}


def workload_for(cfg: ProfileConfig) -> Workload:
    """The workload of ``cfg``, built once per process and settings (the probe and FLOPs count are kept)."""
    key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    if key not in _cache:
        _cache[key] = ModuleWorkload(cfg) if cfg.module else GPT2Workload(cfg)
    return _cache[key]
