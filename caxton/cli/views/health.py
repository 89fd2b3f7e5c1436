"""Views of ``caxton health``: the engine's health (``--detailed``: with versions, agents by state, memory)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from caxton.cli.views.registry import Shown, text_view
from caxton.spec.health import HealthStatus

if TYPE_CHECKING:
    from caxton.spec.api import Health


@dataclass(frozen=True)
class Checked(Shown):
    """An engine's health, with the URL it was read from."""

    result: Health
    engine: str


@text_view("Checked")
def checked_text(checked: Checked) -> Iterator[str]:
    from caxton.spec.api import HealthDetailed

    result = checked.result
    phase = result.phase
    yield f"engine {checked.engine}: {result.status}" + (f" ({phase})" if phase != "serving" else "")
    yield f"  agents serving: {result.agents}  memory: {result.memory_backend}"
    if isinstance(result, HealthDetailed):
        yield f"  version {result.version}  uptime {result.uptime_seconds}s  serial {result.serial}"
        if result.agents_by_state:
            yield "  agents by state: " + ", ".join(f"{k} {v}" for k, v in sorted(result.agents_by_state.items()))
        memory = result.memory
        if memory.enabled is not False:
            problem = f": {memory.message}" if memory.message else ""
            yield f"  memory health: {memory.status}{problem}"
        store = result.store
        if store.status != HealthStatus.HEALTHY:
            since = f" (for {store.unavailable_seconds}s)" if store.unavailable_seconds is not None else ""
            yield f"  store: {store.status}{since}: {store.message}"
            if store.hint:
                yield f"    hint: {store.hint}"
        storage = result.storage
        if storage.status != HealthStatus.HEALTHY:
            yield f"  storage: {storage.status}: {storage.message} ({storage.seconds_ago}s ago)"
            if storage.hint:
                yield f"    hint: {storage.hint}"
