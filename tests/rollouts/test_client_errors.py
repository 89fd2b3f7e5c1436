"""A canary's analysis counts only the revision's own faults: clients flooding it with bad requests cannot roll it back."""

from __future__ import annotations

import itertools
import time
from typing import Any

from caxton.engine.core import Engine
from caxton.engine.intake import Prepared
from caxton.engine.state.records import Source
from tests.rollouts import agents
from tests.rollouts.conftest import Load, Progress

CANARY = {"strategy": "canary", "steps": [50, 100], "interval": 0.4, "analysis": {"min_requests": 10}}
LIMITS = {"max_message_size": "1KiB"}
BIG = {"text": "x" * 4096}


# The engine fixture deploys echo revision 1; ``wasm_spec(1)`` redeploys it with LIMITS as revision 2, so the
# canary is revision 3.


def wasm_spec(version: int, rollout: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**agents.spec("echo", version, rollout), "resource_limits": LIMITS}


def oversized_half(engine: Engine) -> Any:
    """Every other message is over the agent's max_message_size (413 from the serving revision)."""
    counter = itertools.count()
    return lambda conversation: engine.send("echo", BIG if next(counter) % 2 else {"n": 1}, conversation)


def errors_of(load: Load) -> set[str]:
    return {str(r.error).split(":")[0] for r in load.failures()}


def test_a_canary_flooded_with_oversized_messages_promotes(echo_engine: Engine) -> None:
    echo_engine.deploy(wasm_spec(1), agents.module(1))
    with Load(oversized_half(echo_engine)) as load:
        time.sleep(0.1)
        started = echo_engine.rollouts.start(Prepared.of(wasm_spec(2, CANARY), agents.module(2)), Source(actor="test"),
                                        strategy="canary", listener=Progress())
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=20)
    assert errors_of(load) == {"payload_too_large"}
    assert sum(1 for r in load.failures() if r.revision == 3) >= 10, "the canary saw no oversized messages"
    assert rollout.status == "succeeded", rollout.reason
    assert all(m["value"] == 0 for m in rollout.measurements if m["metric"] == "error_rate")


def test_a_faulty_canary_flooded_with_oversized_messages_still_rolls_back(echo_engine: Engine) -> None:
    echo_engine.deploy(wasm_spec(1), agents.module(1))
    with Load(oversized_half(echo_engine)) as load:
        time.sleep(0.1)
        started = echo_engine.rollouts.start(Prepared.of(wasm_spec(2, CANARY), agents.module(2, faulty=True)), Source(actor="test"),
                                        strategy="canary", listener=Progress())
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=20)
    assert errors_of(load) == {"payload_too_large", "agent_failure"}
    assert rollout.status == "rolled_back"
    assert "error_rate" in rollout.reason and "revision 3" in rollout.reason


def config_spec(version: int, rollout: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "helper", "version": f"1.0.{version}", "system_prompt": f"v{version}",
                            "resource_limits": {"max_conversations": 1}}
    if rollout is not None:
        body["rollout"] = rollout
    return body


def test_a_config_canary_flooded_with_new_conversations_and_invalid_requests_promotes(echo_engine: Engine) -> None:
    """Over max_conversations (429) and a bad conversation id (422) are the clients' errors, not revision 2's."""
    echo_engine.deploy(config_spec(1), None)
    counter = itertools.count()

    def send(_: str | None) -> dict[str, Any]:
        n = next(counter)
        conversation = [None, f"c{n}", "not a valid id!" * 20][n % 3]
        return echo_engine.send("helper", "hi", conversation)

    with Load(send) as load:
        time.sleep(0.1)
        started = echo_engine.rollouts.start(Prepared.of(config_spec(2, CANARY), None), Source(actor="test"), strategy="canary",
                                        listener=Progress())
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=20)
    assert errors_of(load) == {"too_many_conversations", "invalid_input"}
    assert rollout.status == "succeeded", rollout.reason
    assert all(m["value"] == 0 for m in rollout.measurements if m["metric"] == "error_rate")
