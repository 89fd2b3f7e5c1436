"""The engine-wide WASM memory budget (caxton.yaml ``server.max_wasm_memory``, docs/limits.md).

Every WASM revision the engine runs reserves the linear memory its instances
may grow to: ``reserved`` (``resource_limits.max_memory_bytes``, capped by
``security_policy.max_memory_pages``, times its pool size: ``pool_size``). ``check`` refuses
a revision whose reservation, added to what the running revisions reserve,
would pass the budget, naming the largest users and how to make room.
``caxton.engine.operations`` calls it before a revision starts (deploy,
rollout candidate, resume, recovery), so a refused deploy changes nothing.
Unset, the budget is half of the machine's memory (``default_budget``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from caxton.errors import LimitExceeded
from caxton.spec.agent import ConfigAgent, WasmAgent, instance_memory_limit

#: The budget when the machine's memory cannot be read.
FALLBACK_BUDGET = 1024**3
#: Users named in a refusal, largest first.
NAMED_USERS = 5


#: A WASM revision runs at most this many instances unless its spec says otherwise.
DEFAULT_POOL_SIZE = 4


def default_pool_size() -> int:
    """Instances per WASM revision without ``resource_limits.pool_size``: min(4, half the CPU cores), at least 1.

    Half the cores: a CPU-bound agent saturated by its clients then leaves the other
    half to the other agents and the control plane (its pool is its share of the machine).
    """
    return max(1, min(DEFAULT_POOL_SIZE, (os.cpu_count() or 1) // 2))


def pool_size(spec: WasmAgent) -> int:
    """Instances a revision of ``spec`` runs (serves messages in parallel)."""
    return spec.resource_limits.pool_size or default_pool_size()


def reserved(spec: WasmAgent | ConfigAgent) -> int:
    """Bytes of WASM linear memory one revision of ``spec`` may hold: each instance's limit x its pool size.

    0 for a config agent. Instances are made as messages overlap, but each may grow to
    its limit, so the budget reserves the whole pool.
    """
    if not isinstance(spec, WasmAgent):
        return 0
    return instance_memory_limit(spec.resource_limits, spec.security_policy) * pool_size(spec)


def default_budget() -> int:
    """Half of the machine's physical memory (``FALLBACK_BUDGET`` when it cannot be read)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return FALLBACK_BUDGET
    return total // 2 if total > 0 else FALLBACK_BUDGET


def budget_of(configured: int | None) -> int:
    """The budget in force: ``server.max_wasm_memory``, else ``default_budget()``."""
    return configured if configured is not None else default_budget()


def check(agent: str, needed: int, used: Mapping[str, int], budget: int) -> None:
    """Raise ``LimitExceeded`` when ``needed`` more bytes would take ``used`` (agent id -> bytes) past ``budget``."""
    total = sum(used.values())
    if needed == 0 or total + needed <= budget:
        return
    largest = sorted(((size, name) for name, size in used.items() if size), reverse=True)[:NAMED_USERS]
    users = ", ".join(f"{name} {_mib(size)}" for size, name in largest) or "none"
    raise LimitExceeded(
        f"agent {agent!r} needs {_mib(needed)} of WASM memory, but the running revisions reserve "
        f"{_mib(total)} of the engine's {_mib(budget)} (server.max_wasm_memory); largest: {users}",
        hint=f"lower resource_limits.max_memory_bytes of {agent!r} (or of another agent), remove or suspend "
             "an agent, or raise server.max_wasm_memory in caxton.yaml",
        details={"agent": agent, "needed": needed, "used": total, "budget": budget,
                 "users": {name: size for size, name in largest}},
    )


def _mib(size: int) -> str:
    return f"{size / 1024**2:,.1f} MiB"
