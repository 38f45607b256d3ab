"""What a timed step is made of: the marks set while it ran, and the record they resolve into.

A step's marks form one timeline: each mark opens a phase that runs until the next mark, so the phases of a step
partition it exactly and nothing is counted twice. With gradient accumulation one optimizer step holds the marks of
all its micro-batches, so ``data``, ``forward`` and ``backward`` are summed over them and ``optimizer`` appears once.
Nothing here knows about Lightning; ``callbacks.phase_timing`` sets the marks from Lightning's hooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


from .timing import DeviceTimer, Mark
from .tokens import count_tokens, first_tensor, read_count

# the phase each mark opens (None: time that belongs to no phase, e.g. Lightning's bookkeeping between hooks)
OPENS_AUTOMATIC: dict[str, str | None] = {
    "data_start": "data",  # waiting for the batch and moving it to the device
    "batch_start": "forward",  # training_step (and zero_grad, which Lightning runs inside the closure)
    "backward_start": "backward",
    "backward_end": None,
    "optimizer_start": "optimizer",  # the update, gradient clipping included
    "optimizer_end": None,  # LR schedulers and loop bookkeeping up to the batch end
    "micro_end": None,  # a micro-batch ended without an optimizer step; its successor's data mark follows
}
# manual optimisation: whatever training_step does outside backward and optimizer.step is its forward work
OPENS_MANUAL = OPENS_AUTOMATIC | {"backward_end": "forward", "optimizer_end": "forward"}


@dataclass
class StepRecord:
    """One timed step, resolved to milliseconds.

    For training a step is an optimizer step: ``tokens`` and ``micro_batches`` cover every micro-batch of it.
    """

    stage: str  # "train", "validate", "test" or "predict"
    step: int  # train: the global optimizer step (Lightning's logging axis); other stages: the batch index
    warmup: bool
    phases: dict[str, float]
    batch_shape: tuple[int, ...] | None = None  # shape of the first micro-batch's first tensor, e.g. (B, T)
    naive_ms: float | None = None  # host clock around the batch, not waiting for the device (inference only)
    tokens: int | None = None  # summed over micro-batches; None unless every one held tokens (see BatchCount)
    micro_batches: list[tuple[int, ...]] = field(default_factory=list)
    extra: bool = False  # run after the counted steps (energy windows, diagnosis): never counted
    index: int = 0  # position among this run's steps of the stage, warm-up included
    host: dict[str, float] = field(default_factory=dict)  # the same phases on the host clock (CUDA only)
    caught_up: bool | None = None  # CUDA: the device had finished the previous step when this one started
    samples: int | None = None  # summed over micro-batches, each from its own size
    tokens_from: str | None = None  # "attention_mask" (padding left out), "shape" (B x T) or "length_fn"

    @property
    def counted(self) -> bool:
        return not self.warmup and not self.extra


@dataclass
class WindowRecord:
    """Time outside the steps: a checkpoint save or a validation run inside fit."""

    kind: str  # "checkpoint" or "validation"
    step: int  # the global step it followed
    ms: float


@dataclass
class PendingStep:
    """A step whose marks are set but not yet resolved."""

    stage: str
    step: int
    index: int
    warmup: bool
    extra: bool
    opens: dict[str, str | None]
    marks: list[tuple[str, Mark, float | None]] = field(default_factory=list)  # (label, device mark, host time)
    counts: list[BatchCount] = field(default_factory=list)  # what each micro-batch holds
    naive_start: float | None = None
    naive_ms: float | None = None
    caught_up: bool | None = None
    global_step_at_start: int = 0

    def intervals(self) -> list[tuple[str, Mark, Mark, float | None]]:
        """(phase, start, end, host ms) of every attributed interval, plus the whole ``step`` for training."""
        out = []
        for (label, start, h0), (_, end, h1) in zip(self.marks, self.marks[1:]):
            phase = self.opens.get(label)
            if phase is not None:
                out.append((phase, start, end, None if h0 is None else (h1 - h0) * 1000.0))
        if self.stage == "train":
            (_, first, h0), (_, last, h1) = self.marks[0], self.marks[-1]
            out.append(("step", first, last, None if h0 is None else (h1 - h0) * 1000.0))
        return out

    def record(self, device_ms: list[float], intervals: list[tuple[str, Mark, Mark, float | None]]) -> StepRecord:
        phases: dict[str, float] = {}
        host: dict[str, float] = {}
        for (phase, _, _, host_ms), ms in zip(intervals, device_ms):
            phases[phase] = phases.get(phase, 0.0) + ms
            if host_ms is not None:
                host[phase] = host.get(phase, 0.0) + host_ms
        shapes = [c.shape for c in self.counts if c.shape is not None]
        return StepRecord(
            stage=self.stage, step=self.step, warmup=self.warmup, phases=phases,
            batch_shape=shapes[0] if shapes else None, naive_ms=self.naive_ms,
            tokens=_total(read_count(c.tokens) for c in self.counts), micro_batches=shapes,
            tokens_from=next((c.source for c in self.counts if c.source), None),
            extra=self.extra, index=self.index, host=host, caught_up=self.caught_up,
            samples=_total(c.samples for c in self.counts),
        )


def _total(values: Any) -> int | None:
    """The sum, or None when any micro-batch's count is unknown (a partial count would understate the rate)."""
    values = list(values)
    return None if not values or any(v is None for v in values) else sum(values)


@dataclass(frozen=True)
class BatchCount:
    """What one batch holds: samples, tokens (None when it holds no token ids) and its first tensor's shape."""

    samples: int | None
    tokens: Any  # an int, None, or a host tensor a device copy is filling (``callbacks.tokens.read_count`` reads it)
    shape: tuple[int, ...] | None
    source: str | None = None  # where the tokens come from: "attention_mask", "shape", "length_fn" (callbacks.tokens)


def count_batch(batch: Any, batch_size_fn: Callable[[Any], int] | None = None,
                length_fn: Callable[[Any], int] | None = None) -> BatchCount:
    """Samples and tokens of a batch.

    By default the first tensor decides the samples (its first dimension) and the tokens follow ``callbacks.tokens``:
    an ``attention_mask``'s sum in a dict batch, else B x T of a 2-D tensor of integers (token ids of shape (B, T)),
    else none (features, images, a 1-D tensor). ``batch_size_fn(batch)`` and ``length_fn(batch)`` say it instead, as
    in Lightning's ThroughputMonitor: samples, and tokens (items) in the whole batch. Never waits for the device.
    """
    tensor = first_tensor(batch)
    shape = None if tensor is None else tuple(tensor.shape)
    if batch_size_fn is not None:
        samples = int(batch_size_fn(batch))
    else:
        samples = shape[0] if shape else None
    tokens, source = count_tokens(batch, length_fn, first=tensor)
    return BatchCount(samples, tokens, shape, source)


def batch_tokens(shape: tuple[int, ...] | None) -> tuple[int, int] | None:
    """(batch size, sequence length) of a batch shape; a 1-D batch counts one token per sample."""
    if not shape:
        return None
    return (shape[0], shape[1]) if len(shape) >= 2 else (shape[0], 1)


def optimizer_step_index(trainer: Any, manual: bool) -> int:
    """The optimizer step a training batch belongs to, on Lightning's logging axis (continuous across a resume).

    ``trainer.global_step`` counts optimizer steps; under manual optimisation it counts each optimizer's step, so a
    batch that steps every optimizer is one step of the axis."""
    return trainer.global_step // (max(1, len(trainer.optimizers)) if manual else 1)


METRIC_PREFIX = {"validate": "val_", "test": "test_"}  # time/val_forward_ms, throughput/test_tokens_per_sec, ...


def logged_per_step(record: StepRecord, trainer: Any) -> bool:
    """Is this counted record logged on its own step? Validation batches never are: their index is no step of the
    run's one global-step axis. Inside fit a validation is one window on that axis (``time/validation_ms``); every
    validation's batches are in ``summary("validate")``."""
    return record.counted and record.stage != "validate"


def resolve(timer: DeviceTimer, pending: list[PendingStep], windows: list[tuple[str, int, Mark, Mark]],
            fit_marks: list[Mark] | None, wait: bool, at_least: int = 1
            ) -> tuple[list[StepRecord], list[WindowRecord], float | None]:
    """Resolve pending steps and windows into records, removing them from the two lists (one device wait at most).

    ``wait=False`` never blocks: only steps whose last mark the device has passed are taken (a prefix, since the
    device works in order), and only when there are ``at_least`` of them; likewise finished windows.
    ``fit_marks`` (start, end) adds fit's wall time, resolved in the same go.
    """
    if wait:
        steps, window_done = pending[:], [True] * len(windows)
    else:
        ready = 0
        while ready < len(pending) and timer.done(pending[ready].marks[-1][1]):
            ready += 1
        steps = pending[:ready] if ready >= at_least else []
        window_done = [timer.done(end) for _, _, _, end in windows]
    del pending[:len(steps)]
    kept_windows = [w for w, done in zip(windows, window_done) if done]
    windows[:] = [w for w, done in zip(windows, window_done) if not done]
    if not steps and not kept_windows and fit_marks is None:
        return [], [], None
    per_step = [p.intervals() for p in steps]
    pairs = [(s, e) for ivs in per_step for _, s, e, _ in ivs] + [(s, e) for _, _, s, e in kept_windows]
    if fit_marks is not None:
        pairs.append((fit_marks[0], fit_marks[1]))
    values = timer.resolve(pairs, wait=wait)
    fit_ms = values.pop() if fit_marks is not None else None
    records, at = [], 0
    for p, ivs in zip(steps, per_step):
        records.append(p.record(values[at:at + len(ivs)], ivs))
        at += len(ivs)
    done_windows = [WindowRecord(kind, step, ms) for (kind, step, _, _), ms in zip(kept_windows, values[at:])]
    return records, done_windows, fit_ms
