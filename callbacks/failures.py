"""How a measuring add-on reports its own failure: one line, the exception's type and the first line of its message."""

from __future__ import annotations


def one_line(e: BaseException) -> str:
    """``ValueError: boom`` (the type alone when the message is empty; later lines of a long message dropped)."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__
