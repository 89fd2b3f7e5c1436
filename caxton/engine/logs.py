"""Recent log lines per agent (``GET /api/v1/agents/{name}/logs``), kept in memory.

Runtimes log through a sink from ``AgentLogs.sink`` (the sandbox's
``caxton.log`` host function, the config runtime); the engine adds lines for
deploys, failures and restarts. Bounded per agent; lost on restart (the
durable record is the event log in the store).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from caxton.engine.store import utcnow

MAX_LINES = 1000
_LEVELS = {0: "debug", 1: "info", 2: "warning", 3: "error"}
_logger = logging.getLogger("caxton.engine.agents")

LogSink = Callable[..., None]


def level_name(level: Any) -> str:
    if isinstance(level, int):
        return _LEVELS.get(level, "info")
    text = str(level).lower()
    return text if text in _LEVELS.values() else "info"


class AgentLogs:
    """A ring buffer of log lines per agent id."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self._max = max_lines
        self._lines: dict[str, deque[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def add(self, agent_id: str, level: Any, message: str, *, revision: int | None = None) -> None:
        line = {"at": utcnow(), "level": level_name(level), "revision": revision, "message": message}
        with self._lock:
            self._lines.setdefault(agent_id, deque(maxlen=self._max)).append(line)
        _logger.log(logging.WARNING if line["level"] in ("warning", "error") else logging.DEBUG,
                    "%s r%s: %s", agent_id, revision, message)

    def sink(self, agent_id: str, revision: int) -> LogSink:
        """A ``log(level, message)`` callable for one runtime."""

        def log(level: Any, message: Any = "", *_: Any) -> None:
            self.add(agent_id, level, str(message), revision=revision)

        return log

    def tail(self, agent_id: str, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            lines = list(self._lines.get(agent_id, ()))
        return lines[-limit:] if limit > 0 else []

    def clear(self, agent_id: str) -> None:
        with self._lock:
            self._lines.pop(agent_id, None)
