"""Agent runtimes as the engine sees them: the shared Protocol and the serving handle.

``AgentRuntime`` is the one shape every runtime has: the WASM sandbox
(``caxton.sandbox.WasmAgentRuntime``) and the config-agent runtime
(``caxton.engine.config_runtime.ConfigAgentRuntime``) both satisfy it
structurally. The engine's router (``caxton.engine.router``) never calls a
runtime directly: it goes through a ``ServingRuntime``, which counts in-flight
messages so a hot swap can drain the old revision before stopping it.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol, runtime_checkable


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
    """

    def start(self) -> None: ...

    def handle(self, envelope: dict[str, Any]) -> Any: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...
