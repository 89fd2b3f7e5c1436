"""Plan files: JSON text with a format version (pure; the CLI does the file I/O)."""

from __future__ import annotations

import json

from pydantic import ValidationError

from caxton.errors import InvalidInput
from caxton.spec.plan import FORMAT_VERSION, Plan


def dumps(plan: Plan) -> str:
    return plan.model_dump_json(indent=2) + "\n"


def loads(text: str, *, where: str = "plan file") -> Plan:
    """Parse a plan file; refuse other format versions and malformed files with a clear error."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"{where} is not JSON ({error.msg} at line {error.lineno}, column {error.colno})",
            hint="pass a file written by `caxton plan --out FILE`",
        ) from None
    if not isinstance(raw, dict) or "format_version" not in raw:
        raise InvalidInput(f"{where} is not a Caxton plan (no format_version)", hint="run `caxton plan --out FILE`")
    if raw["format_version"] != FORMAT_VERSION:
        raise InvalidInput(
            f"{where} has plan format {raw['format_version']!r}; this caxton reads format {FORMAT_VERSION}",
            hint="make the plan again with this version of caxton",
        )
    try:
        return Plan.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        place = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{where} is malformed at {place}: {first['msg']}", hint="make the plan again") from None
