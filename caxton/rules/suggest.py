""""Did you mean" suggestions for names (fields, tools, variables, choices).

Used by every check that rejects a name; pure.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word`` (case-insensitive), or ``None``."""
    pool = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(word.lower(), list(pool), n=1, cutoff=cutoff)
    return pool[found[0]] if found else None


def did_you_mean(word: str, candidates: Iterable[str], *, fallback: str | None = None) -> str | None:
    """A hint: ``did you mean 'x'?``, else the fallback (e.g. the list of valid names)."""
    pool = list(candidates)
    match = closest(word, pool)
    if match is not None:
        return f"did you mean {match!r}?"
    return fallback


def one_of(candidates: Iterable[str], *, limit: int = 12) -> str:
    """``one of: a, b, c`` for hints."""
    names = sorted(candidates)
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"one of: {shown}"
