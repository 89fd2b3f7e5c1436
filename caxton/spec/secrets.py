"""What looks like a secret: the names and value shapes both stacks keep out of what they show.

Plans and the console redact them from specs (``caxton.rules.redact``); the engine redacts them from the
tool-call lines of agent logs (``caxton.llm.tools.loop``) and database URLs from what it shows (``redact_url``).
Pure, no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: Parameter / field names that hold secrets.
SECRET_NAME = re.compile(r"(?i)(api[_-]?key|secret|token|passw(or)?d|credential|private[_-]?key|auth|cookie)")
#: Values that look like credentials whatever their name.
SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}|Bearer\s+\S{12,}|cxt_[0-9a-f]{8}_[A-Za-z0-9_-]{20,})"
)
#: What a redacted value is shown as.
REDACTED = "(secret)"


def redact_text(text: str) -> str:
    """``text`` with every credential-looking part replaced."""
    return SECRET_VALUE.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """A copy of a JSON value with the values of secret-named keys and credential-looking strings replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_NAME.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def excerpt(value: Any, limit: int = 200) -> str:
    """Compact JSON of ``value`` (a string as is) with secrets redacted, cut to ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(redact(value), ensure_ascii=False,
                                                          separators=(",", ":"), default=str)
    text = redact_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact_url(url: str) -> str:
    """``url`` with its password (in the netloc or a ``password=`` query parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc
    if parts.password:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
