"""Units used in agent files: sizes (``50MB``) and durations (``30s``).

Parsers are pure functions that raise ``ValueError`` with a message saying
which units are accepted; pydantic turns those into validation errors. Every
size is at most :data:`MAX_SIZE` and every duration finite and at most
:data:`MAX_DURATION` (``out_of_range``: CX204); a field may narrow the range
further (``gt=0`` where zero means nothing), documented in docs/validation.md.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

#: The largest size any field accepts: 1 TiB.
MAX_SIZE = 1024**4
#: The longest duration any field accepts: 365 days, in seconds.
MAX_DURATION = 365 * 86400.0

_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}
_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")

SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([kKmMgG]i?[bB]|[bB]|[kKmMgG])?\s*$"
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|min|h|d)?\s*$"


def _split(value: str, what: str) -> tuple[float, str]:
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a {what} (expected a number with a unit)")
    return float(match.group(1)), match.group(2)


def parse_size(value: Any) -> int:
    """``"50MB"`` -> 50_000_000 bytes; ints are bytes already."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '50MB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("a size must be a number of bytes or a string like '50MB'")
    number, unit = _split(value, "size")
    factor = _SIZE_UNITS.get(unit.lower() if unit else "b")
    if factor is None:
        raise ValueError(f"unknown size unit {unit!r} in {value!r}; use B, KB, MB, GB, KiB, MiB or GiB")
    return int(number * factor)


def parse_duration(value: Any) -> float:
    """``"30s"`` -> 30.0 seconds; bare numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '30s'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a duration must be a number of seconds or a string like '30s'")
    number, unit = _split(value, "duration")
    factor = _DURATION_UNITS.get(unit if unit else "s")
    if factor is None:
        raise ValueError(f"unknown duration unit {unit!r} in {value!r}; use ms, s, m, h or d")
    return number * factor


def _size_in_range(value: int) -> int:
    if value > MAX_SIZE:
        raise PydanticCustomError("out_of_range", f"a size must be at most 1TiB ({MAX_SIZE:,} bytes)")
    return value


def _duration_in_range(value: float) -> float:
    if not math.isfinite(value) or value > MAX_DURATION:
        raise PydanticCustomError("out_of_range", f"a duration must be finite and at most 365d ({MAX_DURATION:,.0f} s)")
    return value


def looks_like_quantity(value: str) -> bool:
    """True for strings shaped like ``<number><unit>`` (``50MB``, ``10 apples``)."""
    match = _QUANTITY.match(value)
    return bool(match and match.group(2))


def is_size(value: str) -> bool:
    try:
        parse_size(value)
    except ValueError:
        return False
    return True


def is_duration(value: str) -> bool:
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


Size = Annotated[
    int,
    BeforeValidator(parse_size),
    AfterValidator(_size_in_range),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_SIZE},
                   {"type": "string", "pattern": SIZE_PATTERN}]}
    ),
]
"""A byte count, written as an integer or with a unit (``50MB``, ``1MiB``), at most 1 TiB."""

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    AfterValidator(_duration_in_range),
    WithJsonSchema(
        {"anyOf": [{"type": "number", "minimum": 0, "maximum": MAX_DURATION},
                   {"type": "string", "pattern": DURATION_PATTERN}]}
    ),
]
"""Seconds, written as a number or with a unit (``500ms``, ``30s``, ``5m``), finite, at most 365 days."""
