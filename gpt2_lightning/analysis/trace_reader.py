"""Read a Chrome trace's events one at a time, plain or gzip, without loading the file.

A torch.profiler trace of a few large steps is hundreds of megabytes; ``json.load`` would hold all of it, and every
event as a dict, at once. This reader keeps one chunk of text and one event in memory: it walks the top-level object
to ``"traceEvents"`` and decodes that array's elements one by one with the standard library's C decoder
(``raw_decode``), skipping every other top-level value. Both Chrome forms are accepted: ``{"traceEvents": [...]}`` and a
bare array of events.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Iterator
from typing import Any

_CHUNK_CHARS = 1 << 20  # text read at a time
_MAX_VALUE_CHARS = 64 << 20  # one event (or other top-level value) larger than this is not a trace we can read
_WS = re.compile(r"[ \t\n\r]*")
_SEP = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")  # the separator after an element, and the space after it
_DECODER = json.JSONDecoder()


class TraceError(ValueError):
    """A file that is not a readable Chrome trace; the message is one line naming the file."""


def _open_text(path: str | os.PathLike) -> io.TextIOBase:
    """Text of the file, gunzipped when it starts with gzip's magic bytes (whatever its name says)."""
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise TraceError(f"{path}: cannot open it ({e.strerror or e})") from None
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8", errors="replace")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


class _Reader:
    """A window on the text: ``buf[pos:]`` is what has been read and not yet consumed."""

    def __init__(self, f: io.TextIOBase, path: str) -> None:
        self.f, self.path = f, path
        self.buf, self.pos, self.eof = "", 0, False

    def fail(self, why: str) -> TraceError:
        return TraceError(f"{self.path}: not a Chrome trace ({why})")

    def _fill(self) -> bool:
        try:
            chunk = self.f.read(_CHUNK_CHARS)
        except zlib.error as e:  # gzip damaged mid-stream
            raise self.fail(f"unreadable: its gzip data is damaged ({e})") from None
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise self.fail(f"unreadable: {e}") from None
        if not chunk:
            self.eof = True
            return False
        self.buf, self.pos = self.buf[self.pos:] + chunk, 0
        return True

    def peek(self) -> str:
        """The next character that is not white space ('' at the end of the file)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or not self._fill():
                return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected {what}")
        self.pos += 1

    def value(self) -> Any:
        """The next JSON value; reads more text while the value is cut off at the end of the window."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if len(self.buf) - self.pos > _MAX_VALUE_CHARS or not self._fill():
                    raise self.fail("invalid JSON") from None
                continue
            if end == len(self.buf) and not self.eof and self._fill():
                continue  # a number may go on in the next chunk: decode it again with more text
            self.pos = end
            return value


def _array(r: _Reader) -> Iterator[dict[str, Any]]:
    """The elements of an array, one at a time. The fast path decodes straight from the window and finds the comma
    with one regular expression; a value or separator cut off by the window's end goes the slow way (read more)."""
    r.expect("[", "an array of events")
    if r.peek() == "]":
        r.pos += 1
        return
    decode, sep_match = _DECODER.raw_decode, _SEP.match
    while True:
        try:
            event, end = decode(r.buf, r.pos)
        except json.JSONDecodeError:
            event, end = r.value(), r.pos
        m = sep_match(r.buf, end)
        if m is not None:
            r.pos, sep = m.end(), m.group(1)
        else:
            r.pos = end
            sep = r.peek()
            r.pos += 1
        if isinstance(event, dict):
            yield event
        if sep == "]":
            return
        if sep != ",":
            raise r.fail("events not separated by commas")


def iter_events(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every event of the trace, in file order; ``TraceError`` if the file is not a Chrome trace."""
    with _open_text(path) as f:
        r = _Reader(f, str(path))
        if r.peek() == "[":
            yield from _array(r)
            return
        r.expect("{", "a JSON object or array")
        found = False
        while r.peek() != "}":
            key = r.value()
            if not isinstance(key, str):
                raise r.fail("a key that is not a string")
            r.expect(":", "':' after a key")
            if key == "traceEvents":
                yield from _array(r)
                found = True
            else:
                r.value()  # deviceProperties, schemaVersion, ...: not needed
            if r.peek() == ",":
                r.pos += 1
        if not found:
            raise r.fail("no traceEvents")
