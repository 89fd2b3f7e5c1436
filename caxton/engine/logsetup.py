"""The engine's own log: ``logging.level``, ``logging.format`` (text or JSON lines) and ``logging.file``.

``EngineLog.install`` puts two handlers on the root logger (stderr, and the
rotated ``logging.file`` when set), so the engine's loggers and uvicorn's
(started with ``log_config=None``, they propagate to the root) write through
them. ``EngineLog.reload`` is the SIGHUP hook (``caxton.engine.serving.reload``): it
applies the new level and format and re-opens the file (a new handler, so a
file moved away by logrotate is re-created). Called by ``caxton server start``
(``caxton.engine.server``) and ``caxton up`` (``caxton.cli.up``).

JSON lines carry ``time``, ``level``, ``logger``, ``message`` and, when
known, ``agent``, ``revision`` and ``request_id``: the message path sets
``AGENT`` (``Engine.send``), ``RequestIds`` (an ASGI middleware) sets
``REQUEST_ID``; both are context variables, so a line logged while serving a
request or a message names them without any argument, at the cost of one
``ContextVar.set`` per request and per message.
"""

from __future__ import annotations

import itertools
import json
import logging
import logging.handlers
import os
import sys
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from caxton.errors import InvalidInput
from caxton.spec.project import LoggingSettings, ProjectConfig

#: The agent id and revision whose message is being handled.
AGENT: ContextVar[tuple[str, int] | None] = ContextVar("caxton_agent", default=None)
#: The id of the HTTP request being served (the caller's ``X-Request-ID``, else one of ours).
REQUEST_ID: ContextVar[str | None] = ContextVar("caxton_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Loggers that follow ``logging.level`` besides the root.
UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.asgi")
_HEADER = b"x-request-id"
_MAX_ID = 128


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ms), level, logger, message, agent, revision, request_id."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        agent = getattr(record, "agent", None)
        revision = getattr(record, "revision", None)
        if agent is None and (serving := AGENT.get()) is not None:
            agent, revision = serving
        if agent is not None:
            out["agent"], out["revision"] = agent, revision
        if (request_id := REQUEST_ID.get()) is not None:
            out["request_id"] = request_id
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT)


class EngineLog:
    """The root logger's stderr and file handlers, as ``logging`` settings say; re-applied on reload."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._handlers: list[logging.Handler] = []

    def install(self, settings: LoggingSettings) -> None:
        """Replace this log's handlers with new ones (raises ``InvalidInput`` when the file cannot be opened)."""
        handlers: list[logging.Handler] = [logging.StreamHandler(self._stream)]
        if settings.file:
            handlers.append(open_file(settings))
        for handler in handlers:
            handler.setFormatter(formatter(settings.format))
        root = logging.getLogger()
        for handler in handlers:  # the new ones first: no line is lost in between
            root.addHandler(handler)
        old, self._handlers = self._handlers, handlers
        for handler in old:
            root.removeHandler(handler)
            handler.close()
        level = settings.level.upper()
        for name in ("", *UVICORN):
            logging.getLogger(name).setLevel(level)

    def reload(self, config: ProjectConfig) -> None:
        """The SIGHUP hook: the new level and format, and the file re-opened."""
        before = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
        if before != config.logging.level:
            logging.getLogger(__name__).info("log level: %s -> %s", before, config.logging.level)
        self.install(config.logging)

    def close(self) -> None:
        root = logging.getLogger()
        for handler in self._handlers:
            root.removeHandler(handler)
            handler.close()
        self._handlers = []


def open_file(settings: LoggingSettings) -> logging.Handler:
    """``logging.file`` (its folder created), rotated at ``max_file_size`` keeping ``backup_count`` files."""
    assert settings.file is not None
    path = Path(settings.file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return logging.handlers.RotatingFileHandler(path, maxBytes=int(settings.max_file_size),
                                                    backupCount=settings.backup_count, encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"cannot open logging.file {path}: {error.strerror or error}",
                           hint="point logging.file to a writable path, or remove it (the log goes to "
                           "stderr)") from None


class RequestIds:
    """ASGI middleware: ``REQUEST_ID`` is the caller's ``X-Request-ID`` (up to 128 characters) or a new id."""

    _prefix = os.urandom(4).hex()
    _count = itertools.count(1)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == _HEADER), None)
        ident = given[:_MAX_ID].decode("latin-1") if given else f"{self._prefix}-{next(self._count)}"
        token = REQUEST_ID.set(ident)
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_ID.reset(token)
