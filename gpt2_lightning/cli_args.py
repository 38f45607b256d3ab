"""What the three CLIs (profile, train, compare) share in front of argparse: the command's name as it was called,
--help with every default, one-line errors that suggest the nearest flag for a typo."""

from __future__ import annotations

import argparse
import difflib
import os
import sys


EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2  # success; a failed experiment or unexpected error; bad input

class UsageError(Exception):
    """Bad input found before any work: printed as one line, exit code 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help with every flag's default: appended unless the help already says it; switches are "off" unless given.

    The description and epilog keep their own line breaks (examples read as typed)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("(default" in text or not action.option_strings or action.required
                or action.default is argparse.SUPPRESS):
            return text
        if action.nargs == 0:  # store_true
            return f"{text} (default: off)"
        return f"{text} (default: {'none' if action.default is None else '%(default)s'})"


def prog_name(default: str) -> str:
    """The command as it was called, for ``usage:`` and error lines: gpt2-profile, gpt2-train, scripts/profile.py.

    Anything else (a test runner calling main(), ``python -m``) gets ``default``."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    base = os.path.basename(argv0)
    if base in ("gpt2-profile", "gpt2-train", "gpt2-compare", "gpt2-analyze-trace", "gpt2-history"):
        return base
    if base in ("profile.py", "train.py", "compare.py", "analyze_trace.py", "history.py"):
        if os.path.isabs(argv0):
            relative = os.path.relpath(argv0)
            return argv0 if relative.startswith("..") else relative
        return argv0
    return default


def with_suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    """argparse's "unrecognized arguments: --stpes 3", plus the nearest real flag for each unknown one."""
    if "unrecognized arguments:" not in message:
        return message
    flags = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    hints = []
    for token in message.split("unrecognized arguments:", 1)[1].split():
        name = token.split("=", 1)[0]
        if name.startswith("-"):
            near = difflib.get_close_matches(name, flags, n=1, cutoff=0.6)
            if near:
                hints.append(f"{near[0]} for {name}")
    return message + (f" (did you mean {', '.join(hints)}?)" if hints else "")


def raise_usage_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """argparse's own errors (unknown flag, not an int) become a UsageError: one line, exit 2, a suggestion."""

    def error(message: str) -> None:
        raise UsageError(with_suggestion(parser, message))

    parser.error = error  # type: ignore[method-assign]
    return parser
