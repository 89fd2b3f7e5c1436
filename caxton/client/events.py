"""Client side of the engine's event stream (``GET /api/v1/events/stream``, server-sent events).

``frames`` reads one connection: each frame parsed into its wire model of
``caxton.spec.api.stream`` (``Event``, ``RolloutProgress``, ``ApplyProgress``,
``StreamEnd``; a kind this client does not know keeps its JSON). ``follow``
reads frames across reconnects: after a dropped connection, an ``overflow``
or an engine restart (``end`` with reason ``shutdown``) it connects again with
``Last-Event-ID`` set to the last event id it saw, so no event is lost; it
gives up (``EngineUnreachable``) after ``retries`` failed connections in a
row. Called by ``caxton rollout status --watch`` (``caxton.cli.rollout``) and
by the event stream benchmark.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from caxton import errors
from caxton.client.transport import EngineClient, parse
from caxton.spec import api

#: The longest ``follow`` waits between two connections that failed.
MAX_BACKOFF = 5.0
#: Why ``follow`` connects again after a stream ended (a ``timeout`` end is the caller's wish: it stops).
RECONNECT_REASONS = frozenset({"shutdown", "overflow"})


@dataclass(frozen=True)
class Frame:
    """One server-sent event: its kind (``event:``), id (engine events only) and parsed ``data``."""

    kind: str
    id: int | None
    data: Any

    @property
    def ends(self) -> bool:
        """Whether this is a stream's last frame (``end`` or ``overflow``)."""
        return self.kind in (api.StreamKind.END, api.StreamKind.OVERFLOW)


def frames(client: EngineClient, *, agent: str | None = None, after: int | None = None,
           timeout: float | None = None) -> Iterator[Frame]:
    """The frames of one stream (of ``agent``'s frames, resuming after event id ``after``) until it ends."""
    params: dict[str, str | float] = {}
    if agent:
        params["agent"] = agent
    if timeout is not None:
        params["timeout"] = timeout
    headers = {"Last-Event-ID": str(after)} if after is not None else None
    yield from parse_frames(client.lines("/events/stream", params=params, headers=headers))


def parse_frames(lines: Iterator[str]) -> Iterator[Frame]:
    """Frames of the SSE text format (``lines`` without their line ends); comments and ``retry:`` skipped."""
    kind, ident = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield _frame(kind, ident, "\n".join(data))
            kind, ident, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            kind = value
        elif field == "data":
            data.append(value)
        elif field == "id" and value.isdigit():
            ident = int(value)


def _frame(kind: str, ident: int | None, text: str) -> Frame:
    try:
        body = json.loads(text)
    except ValueError:
        raise errors.EngineError(f"the event stream sent a frame that is not JSON: {text[:120]!r}",
                                 hint="is the engine the same version as this CLI?") from None
    model = api.STREAM_DATA.get(kind)
    return Frame(kind, ident, parse(model, body, f"event: {kind}") if model is not None else body)


def follow(client: EngineClient, *, agent: str | None = None, after: int | None = None, retries: int = 8,
           backoff: float = 0.25, sleep: Callable[[float], None] = time.sleep) -> Iterator[Frame]:
    """Frames across reconnects (``Last-Event-ID``: none lost); ``end`` and ``overflow`` frames are not yielded.

    Stops when the engine ends the stream for a reason other than ``RECONNECT_REASONS``. A connection
    that fails or brings no frame counts as a failure; after ``retries`` of them in a row the last
    error is raised (``backoff`` s between them, doubling up to ``MAX_BACKOFF``).
    """
    failures = 0
    while True:
        got, failed = False, None
        try:
            for frame in frames(client, agent=agent, after=after):
                got = True
                if frame.ends:
                    if frame.data.reason not in RECONNECT_REASONS:
                        return
                    break
                if frame.id is not None:
                    after = frame.id
                yield frame
        except (errors.EngineUnreachable, errors.Unavailable) as error:
            failed = error
        failures = 0 if got else failures + 1
        if failures > retries:
            raise failed or errors.EngineUnreachable(
                f"the event stream of {client.base_url} ended {failures} times in a row without a frame",
                hint="see the engine's log")
        if failures:
            sleep(min(backoff * 2 ** (failures - 1), MAX_BACKOFF))
