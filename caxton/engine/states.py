"""Agent lifecycle state machines, exactly as the seeds give them.

Config agents::

    Unvalidated -> Validated -> Registered -> Active <-> Suspended -> Inactive
                                    |            (any live state -> Failed)
                                  Failed

WASM agents::

    Unloaded -> Loaded -> Running <-> Draining -> Stopped
                             |        (any live state -> Failed)
                           Failed

``Failed``, ``Inactive`` and ``Stopped`` are final for a lifecycle: the only
way on is a new deploy, which starts a new lifecycle at the initial state
(``initial``). Pure: the operations layer (``caxton.engine.operations``)
records every transition as an event in the store.
"""

from __future__ import annotations

from collections.abc import Mapping

from caxton.errors import IllegalTransition
from caxton.spec.state import CONFIG_STATES, SERVING_STATE, WASM_STATES

FAILED = "Failed"

CONFIG_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "Unvalidated": frozenset({"Validated", FAILED}),
    "Validated": frozenset({"Registered", FAILED}),
    "Registered": frozenset({"Active", FAILED}),
    "Active": frozenset({"Suspended", FAILED}),
    "Suspended": frozenset({"Active", "Inactive", FAILED}),
    "Inactive": frozenset(),
    FAILED: frozenset(),
}

WASM_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "Unloaded": frozenset({"Loaded", FAILED}),
    "Loaded": frozenset({"Running", FAILED}),
    "Running": frozenset({"Draining", FAILED}),
    "Draining": frozenset({"Running", "Stopped", FAILED}),
    "Stopped": frozenset(),
    FAILED: frozenset(),
}

MACHINES: Mapping[str, Mapping[str, frozenset[str]]] = {
    "config": CONFIG_TRANSITIONS,
    "wasm": WASM_TRANSITIONS,
}

#: The path a new lifecycle walks to serve traffic, by kind.
START_PATH: Mapping[str, tuple[str, ...]] = {
    "config": ("Unvalidated", "Validated", "Registered", "Active"),
    "wasm": ("Unloaded", "Loaded", "Running"),
}
#: The state a suspended agent is in (WASM agents have no Suspended: they drain).
PAUSED_STATE: Mapping[str, str] = {"config": "Suspended", "wasm": "Draining"}
#: The final state of a removed agent.
ENDED_STATE: Mapping[str, str] = {"config": "Inactive", "wasm": "Stopped"}

assert set(CONFIG_TRANSITIONS) == set(CONFIG_STATES)
assert set(WASM_TRANSITIONS) == set(WASM_STATES)


def _machine(kind: str) -> Mapping[str, frozenset[str]]:
    machine = MACHINES.get(kind)
    if machine is None:
        raise IllegalTransition(f"unknown agent kind {kind!r}", hint="kind is 'config' or 'wasm'")
    return machine


def initial(kind: str) -> str:
    """The first state of a new lifecycle."""
    _machine(kind)
    return START_PATH[kind][0]


def allowed(kind: str, current: str) -> frozenset[str]:
    """The states ``current`` may move to."""
    machine = _machine(kind)
    if current not in machine:
        raise IllegalTransition(f"unknown {kind} agent state {current!r}", hint=f"states: {', '.join(machine)}")
    return machine[current]


def check(kind: str, current: str, target: str) -> str:
    """Return ``target`` if ``current -> target`` is legal, else raise ``IllegalTransition``."""
    nexts = allowed(kind, current)
    if target not in nexts:
        options = ", ".join(sorted(nexts)) or "none (start a new lifecycle by deploying again)"
        raise IllegalTransition(
            f"a {kind} agent cannot go from {current} to {target}",
            hint=f"from {current} it may go to: {options}",
            details={"kind": kind, "from": current, "to": target},
        )
    return target


def path(kind: str, current: str, target: str) -> list[str]:
    """The shortest legal sequence of states after ``current`` ending at ``target``.

    Used to walk, e.g., ``Active -> Suspended -> Inactive`` when an active
    config agent is removed. Raises ``IllegalTransition`` if none exists.
    """
    machine = _machine(kind)
    allowed(kind, current)
    frontier: list[list[str]] = [[current]]
    seen = {current}
    while frontier:
        route = frontier.pop(0)
        for nxt in sorted(machine[route[-1]]):
            if nxt == target:
                return [*route[1:], nxt]
            if nxt not in seen:
                seen.add(nxt)
                frontier.append([*route, nxt])
    raise IllegalTransition(
        f"a {kind} agent in state {current} cannot reach {target}",
        hint="deploy the agent again to start a new lifecycle",
        details={"kind": kind, "from": current, "to": target},
    )


def is_serving(kind: str, state: str) -> bool:
    return SERVING_STATE.get(kind) == state


def is_paused(kind: str, state: str) -> bool:
    return PAUSED_STATE.get(kind) == state


def is_final(kind: str, state: str) -> bool:
    return not allowed(kind, state)
