"""The lifecycle state machines: exactly the seeds' transitions, illegal ones raise."""

from __future__ import annotations

import pytest

from caxton.engine import states
from caxton.errors import IllegalTransition
from caxton.spec.state import CONFIG_STATES, WASM_STATES

CONFIG_LEGAL = {
    ("Unvalidated", "Validated"), ("Validated", "Registered"), ("Registered", "Active"),
    ("Active", "Suspended"), ("Suspended", "Active"), ("Suspended", "Inactive"),
}
WASM_LEGAL = {
    ("Unloaded", "Loaded"), ("Loaded", "Running"), ("Running", "Draining"), ("Draining", "Running"),
    ("Draining", "Stopped"),
}


@pytest.mark.parametrize(("kind", "names", "legal", "final"), [
    ("config", CONFIG_STATES, CONFIG_LEGAL, {"Inactive", "Failed"}),
    ("wasm", WASM_STATES, WASM_LEGAL, {"Stopped", "Failed"}),
])
def test_every_pair_of_states_is_legal_exactly_as_the_seeds_say(
    kind: str, names: tuple[str, ...], legal: set[tuple[str, str]], final: set[str],
) -> None:
    for current in names:
        for target in names:
            expected = (current, target) in legal or (target == "Failed" and current not in final)
            if expected:
                assert states.check(kind, current, target) == target
            else:
                with pytest.raises(IllegalTransition) as raised:
                    states.check(kind, current, target)
                assert raised.value.http_status == 409
                assert current in raised.value.message and raised.value.hint


def test_illegal_transition_says_where_it_may_go() -> None:
    with pytest.raises(IllegalTransition) as raised:
        states.check("config", "Active", "Inactive")
    assert "Failed, Suspended" in (raised.value.hint or "")


def test_path_walks_the_legal_route_to_a_removal() -> None:
    assert states.path("config", "Active", "Inactive") == ["Suspended", "Inactive"]
    assert states.path("wasm", "Running", "Stopped") == ["Draining", "Stopped"]
    assert states.path("wasm", "Unloaded", "Running") == ["Loaded", "Running"]
    with pytest.raises(IllegalTransition):
        states.path("config", "Failed", "Inactive")


def test_start_paths_serving_and_paused_states() -> None:
    assert states.initial("config") == "Unvalidated" and states.initial("wasm") == "Unloaded"
    assert states.is_serving("config", "Active") and states.is_serving("wasm", "Running")
    assert states.is_paused("config", "Suspended") and states.is_paused("wasm", "Draining")
    assert states.is_final("config", "Failed") and not states.is_final("wasm", "Running")


def test_unknown_kind_or_state_is_an_illegal_transition() -> None:
    with pytest.raises(IllegalTransition):
        states.check("python", "Active", "Suspended")
    with pytest.raises(IllegalTransition):
        states.check("config", "Sleeping", "Active")
