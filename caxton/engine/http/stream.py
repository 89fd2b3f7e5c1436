"""``GET /api/v1/events/stream``: the engine's events, rollout and apply progress as server-sent events.

The frames come from the engine's live hub (``caxton.engine.stream``) and their
``data`` are the wire models of ``caxton.spec.api.stream`` (docs/api.md says it
all). A stream opens with ``retry:`` and a comment, then: the stored events after
``Last-Event-ID`` (or ``?after=``), read from the store in pages (nothing is lost
across a reconnect), the rollouts in flight (``change: snapshot``), then what
happens, as it happens. Every ``server.stream_heartbeat`` s of silence it sends a
comment line. It ends with ``event: end`` on engine shutdown (before uvicorn waits
for connections: ``caxton.engine.listeners.Server``) or after ``?timeout=`` s, and
with ``event: overflow`` when its client reads too slowly; a client that does not
read at all is cut ``OVERFLOW_GRACE`` s after it overflowed. Role ``read``: the
guard's route policy, like every other route.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from caxton.engine.core import Engine
from caxton.engine.http.deps import EngineDep, router as new_router
from caxton.engine.http.openapi import errors, event_stream
from caxton.engine.stream import END, IDLE, OVERFLOW, Frame, Subscription
from caxton.spec import api as wire

#: Stored events read per page when a stream resumes.
BACKLOG_PAGE = 500
#: What ``retry:`` asks of a browser's EventSource before it reconnects (ms).
RETRY_MS = 2000
#: Seconds a client that overflowed gets to read its ``event: overflow`` before its connection is cut.
OVERFLOW_GRACE = 10.0
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode(frame: Frame) -> bytes:
    """One frame in the SSE wire format (JSON has no raw newline: one ``data:`` line)."""
    head = f"id: {frame.id}\n" if frame.id is not None else ""
    return f"{head}event: {frame.kind}\ndata: {_to_json(frame.data)}\n\n".encode()


def _end(kind: str, reason: str, cursor: int | None) -> bytes:
    return encode(Frame(kind, None, wire.StreamEnd(reason=reason, last_event_id=cursor).model_dump(mode="json")))


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response that ends when its client goes away (even between frames),
    gives its subscription back whatever happens, and cuts a client that overflowed and does not read."""

    media_type = "text/event-stream"

    def __init__(self, engine: Engine, subscription: Subscription, frames: AsyncIterator[bytes]) -> None:
        super().__init__(frames, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.engine = engine
        self.subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def gone() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                async def stuck() -> None:
                    await self.subscription.dropped.wait()
                    await anyio.sleep(OVERFLOW_GRACE)
                    group.cancel_scope.cancel()

                group.start_soon(gone)
                group.start_soon(stuck)
                try:
                    await self.stream_response(send)
                except OSError:
                    pass  # the client went away mid-write
                group.cancel_scope.cancel()
        finally:
            self.engine.unsubscribe(self.subscription)


async def frames(engine: Engine, subscription: Subscription, after: int | None,
                 timeout: float | None) -> AsyncIterator[bytes]:
    """The stream's bytes: the backlog after ``after``, the rollouts in flight, then the live frames."""
    yield f"retry: {RETRY_MS}\n: caxton event stream\n\n".encode()
    agent, cursor = subscription.agent, after
    if after is not None:
        while True:
            page = await anyio.to_thread.run_sync(engine.stream_backlog, agent, cursor or 0, BACKLOG_PAGE)
            for frame in page:
                cursor = frame.id
                yield encode(frame)
            if len(page) < BACKLOG_PAGE:
                break
    for frame in await anyio.to_thread.run_sync(engine.rollout_snapshots, agent):
        yield encode(frame)
    heartbeat = engine.config.server.stream_heartbeat
    deadline = None if timeout is None else anyio.current_time() + timeout
    while True:
        left = heartbeat if deadline is None else min(heartbeat, deadline - anyio.current_time())
        got = await subscription.next(max(left, 0.0))
        if got == IDLE:
            if deadline is not None and anyio.current_time() >= deadline:
                yield _end(END, "timeout", cursor)
                return
            yield b": heartbeat\n\n"
        elif got == OVERFLOW:
            yield _end(OVERFLOW, "overflow", cursor)
            return
        elif got == END:
            yield _end(END, "shutdown", cursor)
            return
        elif isinstance(got, Frame):
            if got.id is not None:
                if cursor is not None and got.id <= cursor:
                    continue  # already sent from the backlog
                cursor = got.id
            yield encode(got)


def routes() -> APIRouter:
    router = new_router()

    @router.get("/events/stream", tags=["state"], status_code=200, response_class=EventStream, responses={
        200: {"description": "server-sent events (docs/api.md): `event: event|rollout|apply|overflow|end`",
              "content": event_stream()},
        **errors(503)})
    async def events_stream(
        engine: EngineDep, agent: str | None = Query(None, max_length=200, description="only frames about this agent"),
        after: int | None = Query(None, ge=0, le=wire.MAX_INT, description="resume after this event id"),
        last_event_id: int | None = Header(None, ge=0, le=wire.MAX_INT, alias="Last-Event-ID",
                                           description="as ``after`` (what a reconnecting EventSource sends)"),
        timeout: float | None = Query(None, gt=0, le=86400, description="end the stream after this many seconds"),
    ) -> Any:
        """Live: the engine's events (with their ids), rollout and apply progress (see docs/api.md)."""
        subscription = engine.subscribe(agent)
        resume = last_event_id if last_event_id is not None else after
        return EventStream(engine, subscription, frames(engine, subscription, resume, timeout))

    return router
