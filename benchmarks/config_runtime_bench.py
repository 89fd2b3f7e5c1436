"""Config-agent runtime figures: in-process messages to an offline agent, and the
OpenAI-compatible provider against the local test server (HTTP keep-alive on 127.0.0.1).

Run: .venv/bin/python benchmarks/config_runtime_bench.py
Prints medians over several runs; nothing here is asserted.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caxton.llm import config_runtime, providers
from caxton.engine.serving import conversations
from caxton.spec import agent as agent_spec
from caxton.spec import project
from tests.support.openai_server import running_openai_server

RUNS = 5
MESSAGES = 2000
HTTP_MESSAGES = 300


def runtime_for(llm: dict[str, Any], registry: providers.ProviderRegistry) -> config_runtime.ConfigAgentRuntime:
    spec = agent_spec.parse_agent(
        {
            "name": "bench",
            "version": "1.0.0",
            "system_prompt": "You are {{ agent.name }} (rev {{ agent.revision }}), tone {{ parameters.tone }}.",
            "user_prompt_template": "{{ memory_context }}Answer briefly: {{ request }}",
            "parameters": {"tone": "plain"},
            "llm": llm,
            "resource_limits": {"max_conversations": 100_000},
        }
    )
    assert isinstance(spec, agent_spec.ConfigAgent)
    runtime = config_runtime.ConfigAgentRuntime(
        spec, revision=1, providers=registry, conversations=conversations.InMemoryConversationStore(max_turns=20)
    )
    runtime.start()
    return runtime


def latencies(runtime: config_runtime.ConfigAgentRuntime, count: int, conversation: bool) -> list[float]:
    out = []
    for i in range(count):
        envelope = {"content": f"question {i}", "conversation_id": f"c{i % 50}" if conversation else None}
        started = time.perf_counter()
        runtime.handle(envelope)
        out.append(time.perf_counter() - started)
    return out


def report(label: str, runs: list[list[float]]) -> None:
    p50 = statistics.median(statistics.median(r) for r in runs) * 1e6
    p99 = statistics.median(sorted(r)[int(len(r) * 0.99)] for r in runs) * 1e6
    rate = statistics.median(len(r) / sum(r) for r in runs)
    print(f"{label:<52} p50 {p50:8.1f} us  p99 {p99:8.1f} us  {rate:9.0f} msg/s")


def main() -> None:
    offline = {"offline": providers.OfflineProvider()}
    for conversation in (False, True):
        runs = [latencies(runtime_for({}, offline), MESSAGES, conversation) for _ in range(RUNS)]
        report(f"offline agent, {'50 conversations' if conversation else 'stateless'}", runs)
    os.environ["CAXTON_BENCH_KEY"] = "sk-bench"
    with running_openai_server() as server:
        settings = project.LLMProviders(
            openai=project.OpenAIProvider(base_url=server.url, api_key_env="CAXTON_BENCH_KEY")
        )
        registry = providers.build_providers(settings)
        runtime = runtime_for({"provider": "openai", "model": "bench"}, registry)
        runs = [latencies(runtime, HTTP_MESSAGES, False) for _ in range(RUNS)]
        report("openai provider -> local test server (stateless)", runs)
        providers.close_providers(registry)


if __name__ == "__main__":
    main()
