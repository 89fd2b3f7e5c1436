"""A canary of a config agent whose new revision uses a broken WASM tool rolls back on its error rate: a
message with a failed tool call is an error sample of the revision that made it (docs/rollouts.md), although
the message itself succeeds (the model sees the failure). In simulated time (ManualClock)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from caxton.engine.core import Engine
from caxton.engine.intake import Prepared
from caxton.engine.state.records import Source
from tests.engine.helpers import wat_module
from tests.rollouts.conftest import NO_MEMORY, advance, candidate_requests
from tests.support.clock import ManualClock
from tests.support.paths import EXAMPLES

WORD_COUNT = (EXAMPLES / "wasm" / "word-count.wasm").read_bytes()
TOOL = {"description": "count words", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}
CANARY = {"strategy": "canary", "steps": [50, 100], "interval": 30, "analysis": {"min_requests": 5}}


def tool_spec(name: str) -> dict[str, Any]:
    return {"name": name, "version": "1.0.0", "kind": "wasm", "module": f"{name}.wasm", "tool": TOOL}


def clerk(version: str, tool: str) -> dict[str, Any]:
    """A config agent whose prompt asks the offline provider to call ``tool`` on the request."""
    return {"name": "clerk", "version": version, "system_prompt": "You count words.", "tools": [tool],
            "user_prompt_template": f'/tool {tool} {{"text": "{{{{ request }}}}"}}', "rollout": CANARY}


@pytest.fixture
def engine(tmp_path: Path, sim_clock: ManualClock) -> Iterator[Engine]:
    engine = Engine(NO_MEMORY, tmp_path / "data", clock=sim_clock)
    engine.start()
    engine.deploy(tool_spec("word-count"), WORD_COUNT)
    engine.deploy(tool_spec("broken-count"), wat_module("unreachable"))
    engine.deploy(clerk("1.0.0", "word-count"), None)
    yield engine
    engine.stop()


def send_until_the_candidate_has(engine: Engine, requests: int) -> list[dict[str, Any]]:
    replies = []
    for n in range(1000):
        replies.append(engine.send("clerk", f"word {n}", f"c{n}")["reply"])
        if candidate_requests(engine, "clerk") >= requests:
            return replies
    raise AssertionError("the candidate got no traffic")


def test_a_canary_whose_new_revision_uses_a_broken_tool_rolls_back(engine: Engine, sim_clock: ManualClock) -> None:
    started = engine.rollouts.start(Prepared.of(clerk("2.0.0", "broken-count"), None), Source(actor="test"),
                                    strategy="canary")
    replies = send_until_the_candidate_has(engine, 10)
    outcomes = {call["tool"]: call["outcome"] for reply in replies for call in reply["tool_calls"]}
    assert outcomes == {"word-count": "ok", "broken-count": "failed"}  # every message answered
    advance(sim_clock, 30)
    rollout = engine.rollouts.wait(started["rollout"], timeout=20)
    assert rollout.status == "rolled_back", rollout.reason
    assert "error_rate" in rollout.reason and "revision 2" in rollout.reason
    [failed] = [m for m in rollout.measurements if m["verdict"] == "fail"]
    assert failed["metric"] == "error_rate" and failed["value"] == 1.0
    route = engine.router.get("clerk")
    assert route is not None and route.traffic() == {"1": 100}
    after = engine.send("clerk", "one two three")["reply"]["tool_calls"]
    assert [(c["tool"], c["outcome"], c["result"]) for c in after] == [("word-count", "ok", {"words": 3})]


def test_a_canary_whose_tools_answer_promotes(engine: Engine, sim_clock: ManualClock) -> None:
    started = engine.rollouts.start(Prepared.of(clerk("2.0.0", "word-count"), None), Source(actor="test"),
                                    strategy="canary")
    for _ in range(2):  # each step: traffic into the candidate's window, then its interval
        send_until_the_candidate_has(engine, 10)
        advance(sim_clock, 30)
    rollout = engine.rollouts.wait(started["rollout"], timeout=20)
    assert rollout.status == "succeeded", rollout.reason
