"""Agent identity: names compare case-insensitively in kebab form.

``DataProcessor``, ``data_processor`` and ``data-processor`` are one agent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def is_valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


@lru_cache(maxsize=65536)
def agent_id(name: str) -> str:
    """The kebab-case identity of an agent name."""
    spaced = _CAMEL_BOUNDARY.sub("-", name.strip())
    return re.sub(r"[-_\s]+", "-", spaced).strip("-").lower()


def closest(name: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """The ids in ``known`` nearest to ``name`` (a likely typo), best first; none when nothing is close."""
    import difflib

    return difflib.get_close_matches(agent_id(name), list(known), n=limit, cutoff=0.6)
