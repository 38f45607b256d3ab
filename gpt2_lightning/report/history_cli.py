"""The trend of many runs of the same settings: scripts/history.py (gpt2-history) runs/nightly

Reads every run below the folder (results.json), orders them by the commit time of the code they measured (then by
when they ran), and writes history.md (a table of tokens/s with each run's range and its change against the run
before) and history.png (the trend, with every change beyond noise marked) into --out (default: the folder itself).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpt2_lightning.cli_args import HelpFormatter, prog_name, with_suggestion


def main(argv: list[str] | None = None) -> int:
    prog = prog_name("scripts/history.py")
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[1], formatter_class=HelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("folder", help="a folder holding run directories (any depth)")
    parser.add_argument("--out", default=None, help="where history.md and history.png go (default: the folder)")

    def error(message):
        print(f"{prog}: error: {with_suggestion(parser, message)}", file=sys.stderr)
        sys.exit(2)

    parser.error = error
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not folder.is_dir():
        error(f"{folder}: no such folder")
    from gpt2_lightning.report.history import write_history

    out = Path(args.out) if args.out else folder
    try:
        text, files = write_history(folder, out)
    except ValueError as e:
        error(str(e))
    except OSError as e:
        where = getattr(e, "filename2", None) or e.filename or out  # a rename names its target second
        hint = ("pass --out DIR to write history.md and history.png elsewhere" if not args.out
                else "pass another --out DIR")
        error(f"cannot write {where} ({e.strerror or e}): {hint}")
    print(text)
    print("\n" + "\n".join(f"wrote {f}" for f in files))
    return 0
