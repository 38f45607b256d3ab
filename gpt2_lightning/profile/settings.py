"""ProfileConfig: every setting of a profile run, one dataclass, checked before any work starts.

Each field's ``help`` doubles as its ``--help`` text; the flag is the field name with dashes. Every check raises
``ConfigError`` naming the flag, the value and what would be valid, which the CLI prints as one line (exit code 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from gpt2_lightning.config import MODEL_NAMES, GPTConfig
from gpt2_lightning.profile.config_error import ConfigError
from gpt2_lightning.profile.module_settings import check_module_settings
from gpt2_lightning.profile.sweep_settings import SWEEP_KEYS, sweep_values

EXPERIMENTS = ("init", "inference", "train")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
PRECISIONS = ("32-true", "tf32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true", "fp8")
PROFILERS = ("none", "simple", "advanced", "pytorch")
INIT_ON = ("device", "cpu")
IF_EXISTS = ("error", "rename")
# Lightning's registered strategy names (lightning.pytorch.strategies.StrategyRegistry, Lightning 2.6), written out so
# that a refusal needs no Lightning import; tests/profile/test_reliability.py checks them against the registry.
_DDP = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")
STRATEGIES = ("auto", *_DDP, *(f"{d}_find_unused_parameters_{b}" for d in _DDP for b in ("true", "false")),
              "single_device", "fsdp", "fsdp_cpu_offload", "deepspeed", "deepspeed_stage_1", "deepspeed_stage_2",
              "deepspeed_stage_2_offload", "deepspeed_stage_3", "deepspeed_stage_3_offload",
              "deepspeed_stage_3_offload_nvme")
GPU_ONLY_STRATEGIES = tuple(s for s in STRATEGIES if s.startswith(("fsdp", "deepspeed")))  # Lightning: CUDA only
TPU_STRATEGIES = ("xla", "xla_debug", "single_xla", "single_tpu")  # registered too; this tool has no TPU accelerator


# a run name is a directory name that every hint the tool prints can hold unquoted (a pasted command must work)
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
RUN_NAME_RULE = ("letters A-Z a-z, digits, '.', '_' and '-' only (not first: '.' or '-'), so that the commands the "
                 "run prints paste into a shell as they are")


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass
class ProfileConfig:
    """Settings of one profile run (one accelerator)."""

    accelerator: str = _help("where to run: auto, cpu, gpu or cuda (as Lightning's Trainer); a comma list such as "
                             "cpu,gpu runs each in turn and compares them", default="auto")
    devices: str = _help("devices per node: a count, 'auto' or a comma list of indices (as Lightning)", default="1")
    strategy: str = _help("Lightning strategy: auto, ddp, ddp_spawn, fsdp, deepspeed, ... (fsdp and deepspeed need "
                          "--accelerator gpu)", default="auto")
    num_nodes: int = _help("machines taking part (multi-node runs)", default=1)
    precision: str = _help(
        "Lightning precision (32-true, 16-mixed, bf16-mixed, bf16-true, 16-true, 64-true) or tf32: "
        "fp32 weights with TF32 matrix units", default="32-true")
    model: str = _help(f"GPT-2 preset: {', '.join(MODEL_NAMES)}", default="gpt2")
    n_layer: int | None = _help("override the preset's number of layers (default: the preset's)", default=None)
    n_head: int | None = _help("override the preset's attention heads (default: the preset's)", default=None)
    n_embd: int | None = _help("override the preset's width (default: the preset's)", default=None)
    vocab_size: int | None = _help("override the preset's vocabulary size (default: the preset's, or the "
                                                 "data's with --data)", default=None)
    activation_checkpointing: bool = _help("recompute every block's activations in backward instead of keeping them "
                                           "(torch.utils.checkpoint per block): less memory, more compute; built-in "
                                           "GPT-2 only", default=False)
    module: str | None = _help("profile your own LightningModule instead of the built-in GPT-2: PKG.MOD:CLASS "
                               "(importable from the current directory or PYTHONPATH) or path/to/file.py:CLASS "
                               "(docs/own-model.md) (default: the built-in GPT-2, --model)", default=None)
    module_args: Any = _help("the module's constructor arguments as a JSON object, e.g. '{\"n_layer\": 2}' "
                             "(default: the class's own defaults)", default=None)
    datamodule: str | None = _help("its LightningDataModule, PKG.MOD:CLASS or path/to/file.py:CLASS; given "
                                   "batch_size, seq_len and num_batches when its constructor names them (default: "
                                   "the module's own dataloaders)", default=None)
    datamodule_args: Any = _help("the DataModule's constructor arguments as a JSON object (default: the class's own "
                                 "defaults)", default=None)
    batch_size: int = _help("sequences per batch (the study's: 8)", default=8)
    seq_len: int = _help("tokens per sequence (the study's: 1024); at most the model's block_size", default=1024)
    warmup_steps: int = _help("steps (and init repeats) run first and never counted", default=2)
    steps: int = _help("timed steps per experiment, after warm-up (the study's: 5)", default=5)
    experiments: str = _help(f"comma list of {', '.join(EXPERIMENTS)}", default="init,inference,train")
    repeat: int = _help("measure everything N times, each time in a fresh process: results.json keeps every repeat "
                        "and the median of their medians, and compare.py judges on how the repeats vary (between "
                        "runs). With --accelerator cpu,gpu or --sweep the settings take turns (A B A B ...)", default=1)
    threads: int | None = _help("torch's intra-op threads (torch.set_num_threads) (default: torch's own, one per "
                                "core). On a machine shared with other work, 1 gives far steadier CPU figures",
                                default=None)
    add_delay_ms: float = _help("sleep this long at the start of every forward pass of the model (train and "
                                "inference), inside the timed work: a known, planted slowdown, to check that a "
                                "comparison tells it apart (scripts/noise_check.py); never for figures you quote",
                                default=0.0)
    add_delay_rank: int | None = _help("plant --add-delay-ms on this rank only (several processes): a known "
                                       "straggler, to check that the per-rank figures name it (default: every rank)",
                                       default=None)
    init_on: str = _help("build the model on the target 'device' directly, or on the 'cpu' then move it "
                         "(the study's way, slow for big models)", default="device")
    compile: bool = _help("run the model through torch.compile; compile time is reported apart", default=False)
    profiler: str = _help(f"Lightning profiler: {', '.join(PROFILERS)} (pytorch on a CPU: only the diagnosis's "
                          f"uncounted steps are profiled, and their trace kept)", default="none")
    nvtx: bool = _help("mark each phase with an NVTX range, for `nsys profile` (CUDA only)", default=False)
    out: str = _help("parent directory of run directories", default="runs")
    run_name: str | None = _help("run directory name under --out (default: a timestamp)", default=None)
    if_exists: str = _help("when the run directory exists: 'error' (exit 2) or 'rename' (add a -N suffix); "
                           "a run directory is never overwritten", default="error")
    seed: int = _help("seed for model init and synthetic tokens", default=1337)
    data: str | None = _help("a token directory (scripts/prepare_data.py) to use instead of synthetic tokens; the "
                             "vocabulary size comes from its meta.json (default: synthetic tokens)", default=None)
    sweep: str | None = _help(
        f"KEY=V1,V2,...: one profile per value into one parent directory, with a combined table and plots; "
        f"KEY is one of {', '.join(SWEEP_KEYS)}, or module_args.NAME / datamodule_args.NAME (one of --module's own "
        f"arguments) (default: no sweep)", default=None)
    verbose: bool = _help("show Lightning's own messages, warnings and progress bar, and torch.profiler's C++ "
                          "messages", default=False)
    no_energy: bool = _help("do not read energy counters, nor run the extra (uncounted) steps an energy window may "
                            "need", default=False)
    energy_window_s: float = _help("shortest energy window in seconds; extra uncounted steps run until it is reached "
                                   "(the counters move about every 100 ms)", default=2.0)
    price_per_hour: float | None = _help("USD per device-hour (times the number of devices): gives $ per million "
                                         "tokens and the cost of --target-tokens (default: no $ figures)", default=None)
    energy_price: float | None = _help("USD per kWh: gives the energy cost per million tokens and of --target-tokens "
                                       "(default: no energy cost)", default=None)
    target_tokens: str | None = _help("training tokens to project the time, energy and cost of: 300M, 10B, 1.5T or a "
                                      "whole number (default: 20 per model parameter, Hoffmann et al. 2022)",
                                      default=None)
    project_devices: int | None = _help("also project --target-tokens on N devices, assuming linear scaling, "
                                        "labelled as an assumption (default: no such projection)", default=None)
    no_diagnose: bool = _help("skip the diagnosis: by default each experiment runs --diagnose-steps more, "
                              "uncounted steps under torch.profiler (on a CPU when that costs under 20%% of the "
                              "experiment, or with --profiler pytorch) and says where the time goes and what to try",
                              default=False)
    diagnose_steps: int = _help("uncounted steps profiled for the diagnosis, after one profiler warm-up step",
                                default=3)
    keep_trace: bool = _help("keep the diagnosis trace (diagnosis-<experiment>.pt.trace.json.gz; kept anyway with "
                             "--profiler pytorch)", default=False)
    memory_snapshot: bool = _help("record CUDA allocation history from the start of each experiment through its first "
                                  "counted steps into memory-<experiment>.pickle (open it at pytorch.org/memory_viz), "
                                  "and on out-of-memory; GPU only, nothing is recorded on a CPU", default=False)

    def __post_init__(self) -> None:
        if self.accelerator not in ACCELERATORS:
            raise ConfigError("accelerator", self.accelerator, f"valid: {', '.join(ACCELERATORS)}")
        self._check_strategy()
        check_module_settings(self)  # --module and its companions (their JSON parsed into dicts here)
        if self.model not in MODEL_NAMES:
            raise ConfigError("model", self.model, f"unknown model; valid: {', '.join(MODEL_NAMES)}")
        for name in ("batch_size", "seq_len", "steps", "num_nodes", "diagnose_steps", "repeat"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, getattr(self, name), "must be a positive integer")
        if self.warmup_steps < 0:
            raise ConfigError("warmup_steps", self.warmup_steps, "must be 0 or more")
        for name in ("n_layer", "n_head", "n_embd", "vocab_size", "threads"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(name, value, "must be a positive integer")
        gpt = self.gpt_config_unchecked()
        if gpt["n_embd"] % gpt["n_head"] != 0:
            raise ConfigError("n_embd", gpt["n_embd"], f"must be divisible by --n-head ({gpt['n_head']})")
        if self.seq_len > gpt["block_size"] and not self.module:
            raise ConfigError("seq_len", self.seq_len, f"must be at most the model's block_size ({gpt['block_size']})")
        if self.precision not in PRECISIONS:
            raise ConfigError("precision", self.precision, f"valid: {', '.join(PRECISIONS)}")
        if self.profiler not in PROFILERS:
            raise ConfigError("profiler", self.profiler, f"valid: {', '.join(PROFILERS)}")
        if self.init_on not in INIT_ON:
            raise ConfigError("init_on", self.init_on, f"valid: {', '.join(INIT_ON)}")
        if self.if_exists not in IF_EXISTS:
            raise ConfigError("if_exists", self.if_exists, f"valid: {', '.join(IF_EXISTS)}")
        bad = [e for e in self.experiment_list if e not in EXPERIMENTS]
        if bad or not self.experiment_list:
            raise ConfigError("experiments", self.experiments, f"a comma list of {', '.join(EXPERIMENTS)}")
        if self.compile and self.warmup_steps < 1:
            raise ConfigError("warmup_steps", self.warmup_steps, "must be at least 1 with --compile: the first step "
                                                                   "compiles, and is never counted")
        if not self.out.strip():  # "" would write the run into the current directory (the repository root)
            raise ConfigError("out", repr(self.out), "is empty: name the parent directory of run directories (--out . for the "
                                           "current directory)")
        if self.run_name is not None and not self.run_name.strip():  # not silently a timestamp
            raise ConfigError("run_name", repr(self.run_name), "is empty: name the run directory, or leave the flag out for a "
                                                "timestamp")
        if self.run_name is not None and not RUN_NAME.fullmatch(self.run_name):
            raise ConfigError("run_name", repr(self.run_name), RUN_NAME_RULE)
        if self.num_nodes > 1 and not self.run_name:
            raise ConfigError("run_name", None, "is required with --num-nodes > 1: every node must write to the same "
                                                "run directory")
        if self.sweep is not None:
            sweep_values(self)  # checks the form; each value is checked when its own config is made
        self._check_costs()
        devices = self.devices.strip()
        if devices != "auto" and not all(part.strip().isdigit() for part in devices.split(",")):
            raise ConfigError("devices", self.devices, "a count, 'auto' or a comma list of device indices")
        if devices.isdigit() and int(devices) <= 0:
            raise ConfigError("devices", self.devices, "must be at least 1")
        if self.accelerator == "cpu":
            self.check_cpu()

    def _check_strategy(self) -> None:
        strategy = self.strategy.lower()  # as Lightning, which lower-cases the name
        if strategy in TPU_STRATEGIES:
            raise ConfigError("strategy", self.strategy, "is a TPU (XLA) strategy; this tool runs on a CPU or a CUDA "
                                                         "GPU")
        if strategy not in STRATEGIES:
            ddp = f"{', '.join(_DDP)} (each also with _find_unused_parameters_true or _false)"
            others = [s for s in STRATEGIES if s != "auto" and s not in _DDP and "_find_unused_" not in s]
            raise ConfigError("strategy", self.strategy, f"valid: auto, {ddp}, {', '.join(others)}")
        if strategy in GPU_ONLY_STRATEGIES and self.accelerator not in ("gpu", "cuda"):
            raise ConfigError("strategy", self.strategy, f"Lightning runs it on CUDA GPUs only: give --accelerator gpu "
                                                         f"(not {self.accelerator})")

    def check_cpu(self, why: str = "") -> None:
        """What Lightning would refuse, or quietly change, on a CPU. ``why`` says how the run came to be on the CPU
        (--accelerator auto on a machine without a GPU)."""
        if "," in self.devices:
            raise ConfigError("devices", self.devices, f"on a CPU{why} give a count (e.g. --devices "
                                                       f"{len(self.devices.split(','))}), not device indices")
        if self.precision == "16-mixed":  # Lightning runs it as bf16-mixed there, and the figures would say 16-mixed
            raise ConfigError("precision", self.precision, f"on a CPU{why} Lightning runs it as bf16-mixed (it has no "
                                                           "fp16 autocast there); give --precision bf16-mixed")

    def _check_costs(self) -> None:
        from gpt2_lightning.report.costs import is_finite_positive, parse_token_count

        for name in ("price_per_hour", "energy_price"):
            value = getattr(self, name)
            if value is not None and not is_finite_positive(value):
                raise ConfigError(name, value, "must be a positive number")
        if self.add_delay_ms != 0 and not is_finite_positive(self.add_delay_ms):
            raise ConfigError("add_delay_ms", self.add_delay_ms, "must be 0 or a positive number of milliseconds")
        rank = self.add_delay_rank
        if rank is not None and (not self.add_delay_ms or not 0 <= rank < self.world_size):
            raise ConfigError("add_delay_rank", self.add_delay_rank, f"needs --add-delay-ms and a rank from 0 to "
                                                                     f"{self.world_size - 1} (the world size)")
        if self.energy_window_s is None or not is_finite_positive(self.energy_window_s) or self.energy_window_s < 1:
            raise ConfigError("energy_window_s", self.energy_window_s, "must be at least 1 second")
        if self.target_tokens is not None:
            try:
                parse_token_count(self.target_tokens)
            except ValueError as e:
                raise ConfigError("target_tokens", self.target_tokens, str(e)) from None
        if self.project_devices is not None and self.project_devices < 1:
            raise ConfigError("project_devices", self.project_devices, "must be a positive integer")

    # ------------------------------------------------------------------ derived settings
    @property
    def world_size(self) -> int:
        """Processes taking part, when --devices is a count (else 1 until Lightning resolves it)."""
        devices = self.trainer_devices
        count = devices if isinstance(devices, int) else (len(devices.split(",")) if devices != "auto" else 1)
        return count * self.num_nodes

    @property
    def experiment_list(self) -> list[str]:
        return [e.strip() for e in self.experiments.split(",") if e.strip()]

    def gpt_config_unchecked(self) -> dict[str, Any]:
        from gpt2_lightning.config import PRESETS

        values = dataclasses.asdict(GPTConfig())
        values.update(PRESETS[self.model])
        for name in ("n_layer", "n_head", "n_embd", "vocab_size"):
            if getattr(self, name) is not None:
                values[name] = getattr(self, name)
        return values

    def model_vocab_size(self) -> int | None:
        """--vocab-size, else the data's vocabulary with --data, else None (the preset's)."""
        if self.vocab_size is not None or self.data is None:
            return self.vocab_size
        from gpt2_lightning.token_files import read_meta

        return read_meta(self.data)["vocab_size"]

    def gpt_config(self) -> GPTConfig:
        return GPTConfig.from_name(
            self.model, n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd,
            vocab_size=self.model_vocab_size(), activation_checkpointing=self.activation_checkpointing,
        )

    @property
    def trainer_precision(self) -> str:
        """What Lightning's Trainer is given: tf32 is fp32 to Lightning, with TF32 matmuls switched on by us; fp8 is
        bf16 autocast around the Linear layers that torchao converts to float8 (``GPT2LightningModule(float8=True)``)."""
        return {"tf32": "32-true", "fp8": "bf16-mixed"}.get(self.precision, self.precision)

    @property
    def trainer_devices(self) -> int | str:
        return int(self.devices) if self.devices.strip().isdigit() else self.devices.strip()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ argparse
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
        """One ``--flag`` per field, with the field's help text and default."""
        for f in dataclasses.fields(cls):
            if f.name in skip:
                continue
            flag = "--" + f.name.replace("_", "-")
            default = f.default
            help_text = f.metadata["help"] + ("" if default in (None, False) else f" (default: {default})")
            kind = str(f.type)  # annotations are strings here: "bool", "int", "int | None", "str", ...
            if kind == "bool":
                parser.add_argument(flag, action="store_true", help=help_text)
            elif kind.startswith("int"):
                parser.add_argument(flag, type=int, default=default, metavar="N", help=help_text)
            elif kind.startswith("float"):
                parser.add_argument(flag, type=float, default=default, metavar="X", help=help_text)
            else:
                parser.add_argument(flag, type=str, default=default, help=help_text)

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace, **overrides: Any) -> "ProfileConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in vars(ns).items() if k in names}
        values.update(overrides)
        return cls(**values)
