"""The real `caxton server start` process: kill -9 recovery and a draining SIGTERM."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from caxton.client import agents as agent_api
from caxton.client import status as status_api
from caxton.spec.api import wire
from tests.engine.helpers import SCORER_WASM, config_spec, wasm_spec
from tests.support.engine import running_engine
from tests.support.openai_server import running_openai_server


def test_after_kill_9_the_same_agents_answer_at_the_same_revisions(tmp_path: Path, store_url: str | None) -> None:
    env = {"CAXTON_STORE_URL": store_url} if store_url else None  # both state backends
    with running_engine(tmp_path, env=env) as engine, engine.client() as client:
        agent_api.deploy(client, wasm_spec("scorer"), SCORER_WASM)
        agent_api.deploy(client, config_spec("writer"))
        agent_api.deploy(client, config_spec("writer", version="1.1.0"))
        agent_api.deploy(client, config_spec("paused"))
        agent_api.suspend(client, "paused")
        before = status_api.state(client)

        assert engine.kill() == -9
        engine.start()

        after = status_api.state(client)
        assert after.serial == before.serial
        assert [(a.id, a.state, a.revision, a.spec_digest) for a in after.agents] == [
            (a.id, a.state, a.revision, a.spec_digest) for a in before.agents
        ]
        assert {a.id: a.state for a in after.agents} == {"paused": "Suspended", "scorer": "Running", "writer": "Active"}
        assert agent_api.send(client, "scorer", "hi").reply["agent"] == "scorer"
        assert agent_api.send(client, "writer", "hi").revision == 2
        assert agent_api.resume(client, "paused").state == "Active"


def test_sigterm_drains_in_flight_messages_then_exits_0(tmp_path: Path) -> None:
    with running_openai_server() as llm:
        llm.delay = 1.0
        config = tmp_path / "caxton.yaml"
        config.write_text(f"llm:\n  openai:\n    base_url: {llm.url}\n    api_key_env: CAXTON_TEST_LLM_KEY\n")
        with running_engine(tmp_path, config=config, env={"CAXTON_TEST_LLM_KEY": "k"}) as engine, \
                engine.client() as client:
            agent_api.deploy(client, config_spec("slow", llm={"provider": "openai", "model": "m"}))
            result: dict[str, Any] = {}
            sender = threading.Thread(target=lambda: result.update(wire(agent_api.send(client, "slow", "finish me"))))
            sender.start()
            deadline = time.monotonic() + 10
            while not llm.requests and time.monotonic() < deadline:
                time.sleep(0.01)
            assert llm.requests, "the message never reached the LLM"
            code = engine.terminate()
            sender.join(10)
    assert code == 0
    assert "finish me" in str(result["reply"])
    assert "caxton engine API at http://127.0.0.1:" in engine.log_text()
