"""How many real tokens a batch holds: one rule for ThroughputCallback, EnergyCallback and the study.

- a batch that is a mapping (a dict, Hugging Face's ``BatchEncoding``) with an ``attention_mask``: the mask's sum, so
  padding never counts (source ``"attention_mask"``);
- else a 2-D integer tensor first in the batch, token ids of shape (B, T): B x T (source ``"shape"``);
- else none (features, images: samples, not tokens);
- a user's ``length_fn(batch)`` overrides both (source ``"length_fn"``).

The mask's sum is a device value. Inside a timed step it must not be read at once (on a GPU ``.item()`` waits for the
device): ``count_tokens`` starts the sum and its copy to the host without waiting, and ``read_count`` reads it once the
step is known finished (the timer resolves a step only after the device has passed its end, and the copy was queued
before that on the same stream). ``tokens_in_batch`` is the plain, waiting form for code outside the timed steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import torch

MASK_KEY = "attention_mask"
SOURCES = {  # source -> what the console and report say about the token count
    "attention_mask": "tokens: non-padding, from attention_mask",
    "shape": "tokens: B x T of the token ids (no attention_mask)",
    "length_fn": "tokens: from length_fn",
}


def first_tensor(batch: Any) -> torch.Tensor | None:
    """The first tensor found in a batch (a tensor, or nested lists, tuples and mappings of them)."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (list, tuple)):
        items: Any = batch
    elif isinstance(batch, Mapping):
        items = batch.values()
    else:
        return None
    for item in items:
        found = first_tensor(item)
        if found is not None:
            return found
    return None


def _mask(batch: Any) -> torch.Tensor | None:
    mask = batch.get(MASK_KEY) if isinstance(batch, Mapping) else None
    return mask if isinstance(mask, torch.Tensor) else None


def _token_ids(tensor: torch.Tensor | None) -> bool:
    return (tensor is not None and tensor.dim() == 2 and not tensor.is_floating_point() and not tensor.is_complex()
            and tensor.dtype != torch.bool)


_UNSET: Any = object()  # ``first``: not looked for yet


def token_source(batch: Any, length_fn: Callable[[Any], int] | None = None, first: Any = _UNSET) -> str | None:
    """Where a batch's token count comes from: "length_fn", "attention_mask", "shape", or None (no tokens).
    ``first``: the batch's ``first_tensor``, when the caller has already found it."""
    if length_fn is not None:
        return "length_fn"
    if _mask(batch) is not None:
        return "attention_mask"
    return "shape" if _token_ids(first_tensor(batch) if first is _UNSET else first) else None


def count_tokens(batch: Any, length_fn: Callable[[Any], int] | None = None, first: Any = _UNSET
                 ) -> tuple[Any, str | None]:
    """(tokens, source) without waiting for the device: tokens is an int, None, or a 0-d host tensor being filled by
    a copy from the device (read it with ``read_count`` once the device has passed this point). ``first``: the
    batch's ``first_tensor``, when the caller has already found it (the batch is walked once)."""
    if first is _UNSET and length_fn is None and _mask(batch) is None:
        first = first_tensor(batch)
    source = token_source(batch, length_fn, first)
    if source == "length_fn":
        return int(length_fn(batch)), source  # type: ignore[misc]
    if source == "attention_mask":
        mask = _mask(batch)
        total = mask.sum()  # type: ignore[union-attr]
        if total.device.type != "cuda":
            return int(total), source  # the CPU: at once (another accelerator: its copy waits)
        return total.to("cpu", non_blocking=True), source  # pinned host memory, filled when the device gets there
    if source == "shape":
        shape = first.shape
        return shape[0] * shape[1], source
    return None, None


def read_count(tokens: Any) -> int | None:
    """An int from ``count_tokens``'s value (a host tensor is read here: call once the device has passed it)."""
    return None if tokens is None else int(tokens)


def tokens_in_batch(batch: Any, length_fn: Callable[[Any], int] | None = None) -> int | None:
    """The real tokens of one batch (the mask's sum when it has an ``attention_mask``; B x T of token ids; None for
    features). Waits for the device when the mask is on a GPU: call it outside timed steps."""
    if token_source(batch, length_fn) == "attention_mask":
        return int(_mask(batch).sum())  # type: ignore[union-attr]  # .item(): waits for a GPU
    return read_count(count_tokens(batch, length_fn)[0])
