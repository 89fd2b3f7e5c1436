"""Agent runtimes as the engine sees them: the shared Protocol and the serving handle.

``AgentRuntime`` is the one shape every runtime has: the WASM sandbox
(``caxton.sandbox.WasmAgentRuntime``) and the config-agent runtime
(``caxton.llm.config_runtime.ConfigAgentRuntime``) both satisfy it
structurally. The engine's router (``caxton.engine.serving.router``) never calls a
runtime directly: it goes through a ``ServingRuntime``, which counts in-flight
messages so a hot swap can drain the old revision before stopping it, and
decides whether a message may run on the event loop (``inline``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from caxton import metrics

#: When a revision's messages on the loop average (EWMA, weight ``INLINE_WEIGHT``) longer than this (s) ...
INLINE_SLOW_S = 0.002
INLINE_WEIGHT = 0.02  # one message must take 100 ms alone to move it: a preemption on a busy machine does not
#: ... its messages go to the thread pool for this many times as long as the last one took.
INLINE_HOLD_OFF = 100.0
#: Never on the loop: a runtime one message of which may take longer than this (s).
INLINE_MAX_WORST_S = 0.1


@runtime_checkable
class AgentRuntime(Protocol):
    """What the engine needs from a runtime of one agent revision.

    - ``start()`` prepares it to serve (instantiate, run init); raises a
      ``caxton.errors.CaxtonError`` (``SandboxError``, ``AgentFailure``...) when it cannot.
    - ``handle(envelope)`` answers one message and returns the JSON-able reply;
      a failure raises ``caxton.errors.AgentFailure`` (or a subclass). It may be
      called from several threads at once.
    - ``stop()`` releases everything; called once, after in-flight messages finished.
    - ``stats()`` returns a JSON-able dict for health and status (failures,
      restarts, circuit state, ...).

    The envelope is ``{"id", "agent", "revision", "conversation_id", "content"}``.

    A runtime whose ``handle`` is one bounded call (WASM: fuel and an epoch deadline)
    may also offer ``handle_nowait(envelope)``: the same, except that it raises
    ``BlockingIOError`` (having done nothing) where ``handle`` would wait, and
    ``worst_case_s``, the longest one message can take. When that is at most
    ``INLINE_MAX_WORST_S``, the engine runs its messages on the event loop (see
    ``ServingRuntime.inline``).
    """

    def start(self) -> None: ...

    def handle(self, envelope: dict[str, Any]) -> Any: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class ServingRuntime:
    """One started runtime of one agent revision, as the router holds it.

    Counts in-flight messages: ``acquire`` refuses new work once ``drain``
    has begun, and ``drain`` waits for the in-flight ones to finish, so a hot
    swap or a suspend never fails a message. ``max_message_size`` is the
    smaller of the server's and the agent's limit.

    ``inline(now)`` says whether the next message may run on the event loop: only
    with a ``handle_nowait`` runtime whose ``worst_case_s`` is at most
    ``INLINE_MAX_WORST_S`` (the quickstart scorer: 10 ms; the defaults: 0.1 s),
    and not while its recent messages were slow
    (``timed``: when their average time on the loop passes ``INLINE_SLOW_S``, the
    revision's messages go to the thread pool for ``INLINE_HOLD_OFF`` times as long as
    the last one took, so slow calls take at most ~1 % of the loop). An average, so
    that one garbage collection or preemption during a fast call moves nothing.
    Wall time, as the loop sees it (a thread CPU clock is a system call per read here).
    """

    def __init__(
        self, runtime: AgentRuntime, *, agent_id: str, name: str, kind: str, revision: int, max_message_size: int,
        wasm_memory: int = 0,
    ) -> None:
        self.runtime = runtime
        #: Bytes of WASM memory this revision reserves in the engine's budget (``caxton.engine.wasm_budget``).
        self.wasm_memory = wasm_memory
        self.agent_id = agent_id
        self.name = name
        self.kind = kind
        self.revision = revision
        self.max_message_size = max_message_size
        self.started_at = time.time()
        #: Messages, errors and response times of this revision: at 0 from now; ``stop`` removes them.
        self.series = metrics.serve_revision(agent_id, str(revision))
        worst = getattr(runtime, "worst_case_s", None)
        bounded = isinstance(worst, float | int) and worst <= INLINE_MAX_WORST_S
        self.handle_nowait: Callable[[dict[str, Any]], Any] | None = (
            getattr(runtime, "handle_nowait", None) if bounded else None)
        self._threads_until = 0.0
        self._average = 0.0  # the EWMA of the time its messages took on the loop (s)
        self._cond = threading.Condition(threading.Lock())
        self._inflight = 0
        self._closing = False
        self._stopped = False

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def closing(self) -> bool:
        return self._closing

    def acquire(self) -> bool:
        """Reserve a slot for one message; False once draining has begun."""
        with self._cond:
            if self._closing:
                return False
            self._inflight += 1
            return True

    def release(self) -> None:
        with self._cond:
            self._inflight -= 1
            if self._inflight == 0 and self._closing:
                self._cond.notify_all()

    def handle(self, envelope: dict[str, Any]) -> Any:
        """Answer one message; the caller holds a slot from ``acquire``."""
        return self.runtime.handle(envelope)

    def inline(self, now: float) -> bool:
        """Whether the next message may run on the event loop (see the class docstring)."""
        return self.handle_nowait is not None and now >= self._threads_until

    def timed(self, seconds: float, now: float) -> None:
        """Note how long one message took on the loop (``seconds``: the loop thread's CPU time for it;
        ``now``: perf_counter at its end)."""
        self._average += (seconds - self._average) * INLINE_WEIGHT
        if self._average > INLINE_SLOW_S:
            self._threads_until = max(self._threads_until, now + seconds * INLINE_HOLD_OFF)

    def drain(self, timeout: float) -> bool:
        """Refuse new messages and wait up to ``timeout`` s for in-flight ones; True if all finished."""
        with self._cond:
            self._closing = True
            return self._cond.wait_for(lambda: self._inflight == 0, timeout=timeout)

    def stop(self) -> None:
        """Stop the runtime (once) and remove its revision's series; call after ``drain``."""
        with self._cond:
            if self._stopped:
                return
            self._stopped = True
            self._closing = True
        try:
            self.runtime.stop()
        finally:
            metrics.forget_revision(self.agent_id, str(self.revision))

    def stats(self) -> dict[str, Any]:
        try:
            inner = dict(self.runtime.stats())
        except Exception as error:  # noqa: BLE001 - stats are for display; never fail a health read
            inner = {"error": f"{type(error).__name__}: {error}"}
        return {"revision": self.revision, "inflight": self._inflight, "draining": self._closing, **inner}
