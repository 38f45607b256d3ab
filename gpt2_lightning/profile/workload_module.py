"""``--module PKG.MOD:CLASS``: the workload of your own LightningModule (``workload.Workload``), and the data the study
drives it with (``StudyData``: exactly the batches an experiment needs, from your DataModule or the module's own
dataloaders)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import lightning as L
from lightning.pytorch.utilities.model_helpers import is_overridden

from gpt2_lightning.profile.settings import ConfigError, ProfileConfig
from gpt2_lightning.profile.workload_base import Workload


class _Batches:
    """Exactly ``n`` batches of a loader, going round it again when it is shorter (the study needs warm-up + counted
    steps whatever the loader's length); a new iterator of the loader each time round."""

    def __init__(self, loader: Any, n: int) -> None:
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[Any]:
        given = 0
        while given < self.n:
            before = given
            for batch in self.loader:
                yield batch
                given += 1
                if given == self.n:
                    return
            if given == before:  # an empty loader: no batches, rather than going round it for ever
                return


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
        self.module_cls = load_class("module", cfg.module, L.LightningModule, cfg.verbose)
        self.data_cls = (load_class("datamodule", cfg.datamodule, L.LightningDataModule, cfg.verbose)
                         if cfg.datamodule else None)
        self.name = self.class_name = self.module_cls.__name__
        L.seed_everything(cfg.seed, verbose=False)
        self._probe = build("module", self.module_cls, dict(cfg.module_args or {}), cfg.verbose)
        if _overrides(self._probe, "configure_model"):
            self._probe.configure_model()  # a module that builds its layers there: count them too
        data = self.make_datamodule(1)  # refuses bad --datamodule-args, or a module without data
        try:
            data.prepare_data()
            data.setup("fit")  # where a DataModule usually makes its datasets
            self._batch = next(iter(data.train_dataloader()))
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
        module = build("module", self.module_cls, dict(self.cfg.module_args or {}), self.cfg.verbose)
        if self.cfg.compile:  # each direct child compiled in place: training_step calls them, not self()
            for child in module.children():
                child.compile(dynamic=False)
        self.attach_flops(module)
        return module

    def user_datamodule(self, num_batches: int) -> L.LightningDataModule | None:
        """The user's DataModule as built (train.py trains on it as it is), or None: the module's own dataloaders."""
        from gpt2_lightning.profile.user_classes import build

        if self.data_cls is not None:
            source = build("datamodule", self.data_cls, self._data_kwargs(num_batches), self.cfg.verbose)
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

    def flops_used(self) -> dict[str, Any]:
        """FlopCounterMode's counts, unless the module's class has its own ``flops_per_batch``: then that rules."""
        own = getattr(self.module_cls, "flops_per_batch", None)
        if not callable(own):
            return super().flops_used()
        b, t = self.batch_shape()
        counted = self.measured_flops()
        return {"train": own(self._probe, b, t, training=True), "inference": own(self._probe, b, t, training=False),
                "source": "the module's flops_per_batch",
                "measured": {k: counted.get(k) for k in ("train", "inference")}}

    def num_params(self) -> int:
        return sum(p.numel() for p in self._probe.parameters())

    def probe(self) -> L.LightningModule:
        return self._probe

    def probe_batch(self) -> Any:
        return self._batch


def _named_params(cls: type) -> set[str]:
    try:
        return set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return set()
