#!/usr/bin/env python
"""Turn a text file into token files for training: python scripts/prepare_data.py TEXT --tokenizer bytes --out DIR

Writes DIR/train.bin and DIR/val.bin (flat uint16, or uint32 for vocabularies over 65536) and DIR/meta.json
(tokenizer, vocabulary size, dtype, token counts). The last --val-fraction of the text is the validation split.

Tokenizers:
  bytes  UTF-8 bytes, vocabulary 256. Needs nothing, always works.
  gpt2   GPT-2's BPE through tiktoken (pip install -e ".[data]"), vocabulary 50257. tiktoken downloads its BPE files on
         first use and caches them; on a machine without internet, copy a cache made elsewhere and point
         TIKTOKEN_CACHE_DIR at it (the files are named by a hash of their URL; copy the whole folder).
"""

import argparse
import json
import os
import sys
from pathlib import Path

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)
import numpy as np

from gpt2_lightning.report.results import atomic_write_text
from gpt2_lightning.token_files import META_FILE, token_dtype


def encode(text: str, tokenizer: str) -> tuple[list[int] | np.ndarray, int]:
    if tokenizer == "bytes":
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8), 256
    try:
        import tiktoken
    except ImportError:
        raise SystemExit('prepare_data.py: error: --tokenizer gpt2 needs tiktoken: pip install -e ".[data]" (the '
                         "project's data extra: docs/training.md#real-data-and-real-training), or --tokenizer "
                         "bytes") from None
    try:
        enc = tiktoken.get_encoding("gpt2")
    except Exception as e:  # noqa: BLE001 - no network, no cache: say what to do in one line
        raise SystemExit(
            f"prepare_data.py: error: --tokenizer gpt2: tiktoken could not load its GPT-2 files ({e.__class__.__name__});"
            " without internet, set TIKTOKEN_CACHE_DIR to a copied tiktoken cache, or use --tokenizer bytes"
        ) from None
    return enc.encode_ordinary(text), enc.n_vocab


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="prepare_data.py", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("text", help="a UTF-8 text file")
    parser.add_argument("--tokenizer", choices=("gpt2", "bytes"), default="bytes")
    parser.add_argument("--out", required=True, help="directory to write (created; existing token files are refused)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of the tokens kept for validation")

    def error(message):
        print(f"prepare_data.py: error: {message}", file=sys.stderr)
        sys.exit(2)

    parser.error = error
    args = parser.parse_args(argv)
    if not 0.0 < args.val_fraction < 1.0:
        error(f"--val-fraction {args.val_fraction}: must be between 0 and 1")
    try:
        text = Path(args.text).read_text(encoding="utf-8")
    except FileNotFoundError:
        error(f"{args.text}: no such file")
    except (OSError, UnicodeDecodeError) as e:
        error(f"{args.text}: cannot read as UTF-8 text ({e.__class__.__name__})")
    out = Path(args.out)
    if any((out / f).exists() for f in ("train.bin", "val.bin", META_FILE)):
        error(f"--out {out}: already holds token files; choose a new directory")
    try:
        ids, vocab = encode(text, args.tokenizer)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    dtype = token_dtype(vocab)
    tokens = np.asarray(ids, dtype=dtype)
    n_val = int(len(tokens) * args.val_fraction)
    if n_val < 2 or len(tokens) - n_val < 2:
        error(f"{args.text}: {len(tokens)} tokens, too few to split into train and validation")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tokens[: len(tokens) - n_val].tofile(out / "train.bin")
        tokens[len(tokens) - n_val :].tofile(out / "val.bin")
    except OSError as e:
        error(f"--out {out}: cannot write ({e.strerror or e})")
    meta = {"tokenizer": args.tokenizer, "vocab_size": vocab, "dtype": dtype, "source": os.path.abspath(args.text),
            "train_tokens": int(len(tokens) - n_val), "val_tokens": n_val}
    atomic_write_text(out / META_FILE, json.dumps(meta, indent=2) + "\n")
    print(f"{out}: {meta['train_tokens']:,} train + {meta['val_tokens']:,} val tokens ({args.tokenizer}, {dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
