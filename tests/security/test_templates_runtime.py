"""Templates that slip past the static check are contained at render time: that message fails with reason
``template``, quickly, without growing the engine; the agent and the engine keep serving.

In-process: the config-agent runtime built straight from a spec (no deploy check). Real engine: the
deploy check refuses the issue's examples (PUT /agents, 422 CX309, the same message as validate), and a
revision written into the store before the check existed (tampered here) is contained when it serves.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from caxton import errors
from caxton.client import agents as agent_api
from caxton.llm import config_runtime, providers
from caxton.engine.serving import conversations
from caxton.engine.state import store
from caxton.spec import agent as agent_spec
from caxton.spec.project import TemplateSettings
from caxton.rules import templates
from tests.support.engine import EngineProcess, running_engine

ISSUE_EXAMPLES = ["{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ request * 10**7 }}", "{{ 'x' * 10**9 }}",
                  "{{ 10**(10**7) }}"]

#: Constructs the static check cannot judge (sizes known only at run time) and how each is stopped.
RUN_TIME_BURNERS = {
    "agent-name-repeated": ("{{ agent.name * (request|length) * (request|length) * (request|length) }}",
                            "a repetition would build"),
    "doubling-concat": ("{% set ns = namespace(s=request) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
                        "{% endfor %}{{ ns.s|length }}", "a '~' concatenation would build"),
    "doubling-join": ("{% set ns = namespace(s=request) %}{% for i in range(40) %}"
                      "{% set ns.s = [ns.s, ns.s]|join %}{% endfor %}", "a join would build"),
    "doubling-format": ("{% set ns = namespace(s=request) %}{% for i in range(40) %}"
                        "{% set ns.s = '%s%s' % (ns.s, ns.s) %}{% endfor %}", "a '%' format would build"),
    "replace-growth": ("{{ request|replace('', request) }}", "a replace would build"),
    "method-padding": ("{{ request.ljust(request|length * 100000) }}", "a call with the number"),
    "output-loop": ("{% for i in range(100000) %}{{ request }}{% endfor %}", "the output passed"),
    "silent-loop": ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                    "rendering took longer than"),
}
MESSAGE = "m" * 2000


def _runtime(system_prompt: str, limits: TemplateSettings | None = None) -> config_runtime.ConfigAgentRuntime:
    spec = agent_spec.parse_agent({"name": "burner", "version": "1.0.0", "system_prompt": system_prompt})
    assert isinstance(spec, agent_spec.ConfigAgent)
    runtime = config_runtime.ConfigAgentRuntime(
        spec, revision=1, providers={"offline": providers.OfflineProvider()},
        conversations=conversations.InMemoryConversationStore(), limits=limits or TemplateSettings(),
    )
    runtime.start()
    return runtime


def _send(runtime: config_runtime.ConfigAgentRuntime, content: str) -> Any:
    return runtime.handle({"id": "m", "agent": "burner", "revision": 1, "content": content, "conversation_id": None})


@pytest.mark.parametrize("source", ISSUE_EXAMPLES)
def test_the_issue_examples_fail_one_message_with_reason_template(source: str) -> None:
    runtime = _runtime(source)
    with pytest.raises(errors.ConfigAgentFailure) as failed:
        _send(runtime, MESSAGE)
    assert failed.value.reason == "template"
    assert runtime.stats()["failures_by_reason"] == {"template": 1}


@pytest.mark.parametrize("name", sorted(RUN_TIME_BURNERS))
def test_run_time_burners_are_stopped_by_a_bound(name: str) -> None:
    source, why = RUN_TIME_BURNERS[name]
    runtime = _runtime(source, TemplateSettings(max_output_size=1024 * 1024, max_render_time=0.3))
    with pytest.raises(errors.ConfigAgentFailure) as failed:
        _send(runtime, MESSAGE)
    assert failed.value.reason == "template"
    assert "went past its render limits" in failed.value.message and why in failed.value.message
    assert "fix the template" in (failed.value.hint or "")


def test_a_bounded_render_leaves_the_agent_serving_ordinary_messages() -> None:
    runtime = _runtime("{% if request|length > 100 %}{{ request * 10000 }}{% else %}ok: {{ request }}{% endif %}")
    with pytest.raises(errors.ConfigAgentFailure):
        _send(runtime, MESSAGE)
    assert "ok: short" in str(_send(runtime, "short"))


def test_the_watchdog_never_fires_after_a_render() -> None:
    runtime = _runtime("{% for i in range(1000) %}{{ i }}{% endfor %}", TemplateSettings(max_render_time=0.05))
    replies = [_send(runtime, "x") for _ in range(20)]
    time.sleep(0.2)  # past every deadline: a late exception raised into this thread would surface here
    replies.append(_send(runtime, "x"))
    assert all("998999" in str(reply) for reply in replies)
    assert runtime.stats()["failures"] == 0


# --- a real engine -------------------------------------------------------------------------------
def _config(tmp_path: Path) -> Path:
    config = tmp_path / "caxton.yaml"
    config.write_text("memory:\n  enabled: false\ntemplates:\n  max_render_time: 500ms\n")
    return config


def test_the_engine_refuses_to_deploy_them_with_the_validate_message(tmp_path: Path) -> None:
    with running_engine(tmp_path, config=_config(tmp_path)) as engine:
        for source in ISSUE_EXAMPLES:
            spec = {"name": "burner", "version": "1.0.0", "system_prompt": "Hi.", "user_prompt_template": source}
            answer = httpx.put(f"{engine.url}/api/v1/agents/burner", timeout=30,
                               json={"spec": spec, "module": None, "source": {}})
            assert answer.status_code == 422, answer.text
            body = answer.json()
            first = templates.unsafe_problems(source)[0]
            assert (f"'burner': user_prompt_template:1:{first.column}: {first.message} (CX309)"
                    in body["error"]["message"])
            assert body["error"]["details"][0]["code"] == "CX309"
        assert httpx.get(f"{engine.url}/api/v1/agents/burner", timeout=10).status_code == 404


def test_stored_burners_are_contained_while_the_engine_keeps_serving(tmp_path: Path) -> None:
    """Revisions deployed before the check (written into the store here) serve; their messages fail fast."""
    burners = {f"burner-{i}": source for i, source in enumerate(ISSUE_EXAMPLES)}
    with running_engine(tmp_path, config=_config(tmp_path)) as engine:
        with engine.client() as client:
            for name in [*burners, "good"]:
                agent_api.deploy(client, {"name": name, "version": "1.0.0", "system_prompt": "You help."})
        assert engine.terminate() == 0
        for name, source in burners.items():
            _tamper(engine.data_dir, name, source)
        engine.start()
        rss_before = _rss_mb(engine)
        healthy: list[int] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                healthy.append(httpx.get(f"{engine.url}/api/v1/health", timeout=10).status_code)
                time.sleep(0.02)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            with engine.client() as client:
                for _ in range(3):
                    for name in burners:
                        answer = httpx.post(f"{engine.url}/api/v1/agents/{name}/messages", timeout=30,
                                            json={"content": "k" * 1000})
                        assert answer.status_code == 502, answer.text
                        error = answer.json()["error"]
                        assert error["details"]["field"] == "system_prompt", error
                    assert "You help." in str(agent_api.send(client, "good", "still there?"))
                stats = {name: agent_api.get(client, name).runtime[0].failures_by_reason for name in burners}
        finally:
            stop.set()
            prober.join(10)
        assert stats == {name: {"template": 3} for name in burners}
        assert healthy and set(healthy) == {200}, "/health did not answer 200 throughout"
        assert _rss_mb(engine) < rss_before + 100, "the engine grew while refusing the burners"


def _tamper(data_dir: Path, agent: str, system_prompt: str) -> None:
    with sqlite3.connect(data_dir / store.DB_NAME) as conn:
        (sha,) = conn.execute("SELECT r.spec_sha256 FROM revisions r JOIN agents a ON a.id = r.agent_id "
                              "AND a.revision = r.number WHERE a.id = ?", (agent,)).fetchone()
        (data,) = conn.execute("SELECT data FROM blobs WHERE sha256 = ?", (sha,)).fetchone()
        spec = json.loads(data)
        spec["system_prompt"] = system_prompt
        conn.execute("UPDATE blobs SET data = ? WHERE sha256 = ?", (json.dumps(spec).encode(), sha))


def _rss_mb(engine: EngineProcess) -> float:
    assert engine.proc is not None
    status = Path(f"/proc/{engine.proc.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024
