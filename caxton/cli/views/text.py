"""Pieces every text view shares: the one table, the one traffic formatter, short commits, times, counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, indent: str = "", gap: str = "  ",
          widths: Sequence[int] | None = None) -> list[str]:
    """Left-aligned columns, each as wide as its widest cell (or as ``widths`` says), trailing blanks cut."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    if widths is None:
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [(indent + gap.join(cell.ljust(width) for cell, width in zip(row, widths))).rstrip() for row in cells]


def traffic(weights: Mapping[str, int], *, long: bool = False) -> str:
    """Revision -> weight: ``r1 90%, r2 10%`` (``long``: ``revision 1: 90 %, ...``); ``-`` when none."""
    shape = "revision {}: {} %" if long else "r{} {}%"
    return ", ".join(shape.format(revision, weight) for revision, weight in weights.items()) or "-"


def short(commit: object, default: str = "-") -> str:
    """A commit or digest cut to 12 characters (``sha256:`` dropped); ``default`` when there is none."""
    return default if not commit else str(commit).removeprefix("sha256:")[:12]


def when(timestamp: str) -> str:
    """An ISO 8601 time to the second, with a blank for the ``T``."""
    return timestamp[:19].replace("T", " ")


def counted(counts: Mapping[str, int], default: str) -> str:
    """``2 done, 1 failed`` (sorted by word), ``default`` when empty."""
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or default


def megabytes(size: float) -> str:
    return f"{size / 1e6:.1f}"
