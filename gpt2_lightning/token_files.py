"""nanoGPT-style token files on disk: ``train.bin``, ``val.bin`` and ``meta.json`` (written by
``scripts/prepare_data.py``), their format and every check made before any work. numpy only: command lines refuse a
bad ``--data`` directory without loading torch. The DataModule that reads them is ``data.TokenFileDataModule``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

DTYPES = {"uint16": np.uint16, "uint32": np.uint32}
META_FILE = "meta.json"


class DataError(ValueError):
    """A data directory that cannot be used; the message is one line naming the file and the problem."""


def token_dtype(vocab_size: int) -> str:
    """uint16 when every id fits (GPT-2's 50257 does), else uint32."""
    return "uint16" if vocab_size <= 2**16 else "uint32"


def read_meta(data_dir: str | Path) -> dict[str, Any]:
    path = Path(data_dir) / META_FILE
    if not Path(data_dir).is_dir():
        raise DataError(f"{data_dir}: no such data directory (make one with scripts/prepare_data.py)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: missing (make the directory with scripts/prepare_data.py)") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable ({e.__class__.__name__})") from None
    if not isinstance(meta, dict) or meta.get("dtype") not in DTYPES or not isinstance(meta.get("vocab_size"), int):
        raise DataError(f"{path}: needs 'vocab_size' (int) and 'dtype' ({' or '.join(DTYPES)})")
    return meta


def open_tokens(data_dir: str | Path, split: str, meta: dict[str, Any]) -> np.memmap:
    path = Path(data_dir) / f"{split}.bin"
    if not path.is_file():
        raise DataError(f"{path}: missing")
    itemsize = np.dtype(DTYPES[meta["dtype"]]).itemsize
    if path.stat().st_size % itemsize:
        raise DataError(f"{path}: size is not a whole number of {meta['dtype']} tokens; truncated?")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty")
    return np.memmap(path, dtype=DTYPES[meta["dtype"]], mode="r")


def check_data(data_dir: str | Path, seq_len: int, vocab_size: int | None = None) -> dict[str, Any]:
    """Everything that can be wrong with a data directory, found before any work: DataError, one line each."""
    meta = read_meta(data_dir)
    vocab = meta["vocab_size"] if vocab_size is None else vocab_size
    if vocab < meta["vocab_size"]:
        raise DataError(f"--vocab-size {vocab} is smaller than the data's vocabulary ({meta['vocab_size']})")
    for split in ("train", "val"):
        tokens = open_tokens(data_dir, split, meta)
        if len(tokens) < seq_len + 1:
            raise DataError(f"{Path(data_dir) / (split + '.bin')}: {len(tokens)} tokens, shorter than one window "
                            f"of --seq-len {seq_len} + 1")
        top = int(_max_token(tokens))
        if top >= vocab:
            raise DataError(f"{Path(data_dir) / (split + '.bin')}: token id {top} is not below the vocabulary size "
                            f"{vocab}")
    return meta


def _max_token(tokens: np.memmap, chunk: int = 1 << 24) -> int:
    return max(int(tokens[i : i + chunk].max()) for i in range(0, len(tokens), chunk))
