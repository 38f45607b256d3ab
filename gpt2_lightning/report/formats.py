"""How figures are written everywhere (console, report.md, comparisons, plots): durations, rates, speed-ups, ranges
and tables. Plain Python."""

from __future__ import annotations


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.3f} ms"


def fmt_count(n: float, digits: int = 3, giga: str = "B") -> str:
    """A count in its largest unit: 10B, 2.48B, 1.5T, 300M tokens (``digits`` significant figures); FLOPs give
    ``giga="G"`` (12.34G)."""
    for div, suffix in ((1e12, "T"), (1e9, giga), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.{digits}g}{suffix}"
    return f"{n:.0f}"


def fmt_rate(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:.2f}{suffix}{unit}"
    return f"{value:.1f}{unit}"


def fmt_speedup(s: float | None) -> str:
    """0.0364x, 0.98x, 1.00x, 63.4x, 2,903x: no exponent, and 1.00x rather than 1x."""
    if s is None:
        return "-"
    if s >= 100:
        return f"{s:,.0f}x"
    if s >= 10:
        return f"{s:.1f}x"
    return f"{s:.2f}x" if s >= 0.1 else f"{s:.3g}x"


def fmt_range(low: str, high: str) -> str:
    """"11.9-13.4 ms" rather than "11.9 ms-13.4 ms": a unit the two ends share is written once."""
    for unit in (" ms", " s", " µs", "x"):
        if low.endswith(unit) and high.endswith(unit):
            return f"{low[: -len(unit)]}-{high}"
    return f"{low}-{high}"


def render_table(header: list[str], body: list[list[str]], markdown: bool = False, numbers: bool = True,
                 text_columns: tuple[int, ...] = ()) -> str:
    """Labels in the first column (left-aligned), figures in the rest (right-aligned, or left with numbers=False):
    console text or markdown. ``text_columns``: columns of phrases (a speed-up and its judgement) that read from the
    left, under a header that starts where they start."""
    left = {0, *text_columns} if numbers else set(range(len(header)))
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "".join("---|" if i in left else "---:|" for i in range(len(header)))]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = (c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        return "  ".join(cells).rstrip()

    lines = [line(row) for row in body]
    return "\n".join([line(header), "-" * max(map(len, [line(header), *lines])), *lines])
