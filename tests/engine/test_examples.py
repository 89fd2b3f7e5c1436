"""The quickstart's agents, loaded as the desired state, deploy and answer real messages."""

from __future__ import annotations

from caxton.desired import loader
from caxton.engine.core import Engine
from caxton.spec.digest import spec_digest
from tests.support.paths import EXAMPLES


def test_quickstart_agents_deploy_and_answer(engine_inproc: Engine) -> None:
    desired = loader.load(EXAMPLES)
    assert not desired.has_errors() and len(desired.agents) >= 3
    for agent in desired.agents:
        result = engine_inproc.deploy(agent.spec.model_dump(mode="json"), agent.module_bytes)
        assert result.state in ("Active", "Running")
    live = {a.id: a for a in engine_inproc.snapshot().agents}
    for agent in desired.agents:  # the engine's digest is the one the planner computes
        assert live[agent.id].spec_digest == agent.digest == spec_digest(live[agent.id].spec, agent.module_sha256)
    assert engine_inproc.send("scorer", {"text": "hi"})["reply"]["agent"] == "scorer"
    reply = engine_inproc.send("data-processor", "count the rows", "conv-1")["reply"]
    assert "Process this data request: count the rows" in reply["reply"]
