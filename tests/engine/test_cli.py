"""`caxton health` and `caxton agents ...` against a real engine process, and an unreachable one."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from caxton.client import agents as agent_api
from tests.conftest import CliResult
from tests.engine.helpers import SCORER_WASM, config_spec, wasm_spec
from tests.support.engine import EngineProcess, running_engine
from tests.support.paths import free_port

TOKEN = "cli-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with running_engine(tmp_path_factory.mktemp("cli"), token=TOKEN) as engine, engine.client() as client:
        agent_api.deploy(client, wasm_spec("scorer"), SCORER_WASM)
        agent_api.deploy(client, config_spec("DataProcessor"))
        yield engine


@pytest.fixture
def cli(run_cli: Callable[..., CliResult], served: EngineProcess,
        monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    monkeypatch.setenv("CAXTON_ENGINE_URL", served.url)
    monkeypatch.setenv("CAXTON_API_TOKEN", TOKEN)
    return run_cli


def test_health(cli: Callable[..., CliResult]) -> None:
    result = cli("health")
    assert result.code == 0 and ": healthy" in result.out and "agents serving: 2" in result.out
    detailed = cli("health", "--detailed", "--output", "json")
    assert detailed.code == 0 and json.loads(detailed.out)["agents_by_state"] == {"Active": 1, "Running": 1}


def test_list_and_status(cli: Callable[..., CliResult]) -> None:
    listing = cli("agents", "list")
    assert listing.code == 0 and listing.out.splitlines()[0].split() == [
        "NAME", "KIND", "VERSION", "STATE", "REVISION", "TRAFFIC", "SYNC", "HEALTH", "REASON"]
    assert "scorer" in listing.out and "DataProcessor" in listing.out
    as_json = json.loads(cli("agents", "list", "-o", "json").out)
    assert {a["id"] for a in as_json} == {"scorer", "data-processor"}
    status = cli("agents", "status", "data_processor")
    assert status.code == 0 and "DataProcessor (config) 1.0.0: Active, revision 1" in status.out


def test_send_and_logs(cli: Callable[..., CliResult]) -> None:
    sent = cli("agents", "send", "scorer", '{"n": 1}', "--json")
    assert sent.code == 0 and json.loads(sent.out)["agent"] == "scorer"
    answer = cli("agents", "send", "data-processor", "hello there", "--conversation", "c1", "-o", "json")
    assert answer.code == 0 and json.loads(answer.out)["conversation_id"] == "c1"
    logs = cli("agents", "logs", "scorer", "-n", "5")
    assert logs.code == 0 and "scorer ready" in logs.out


def test_send_trace_shows_the_model_rounds_and_each_tool_call(cli: Callable[..., CliResult], served: EngineProcess,
                                                              snapshot: SnapshotAssertion) -> None:
    with served.client() as client:
        agent_api.deploy(client, config_spec("clerk", tools=["calculator", "csv_parser"]))
    message = 'Sum it\n/tool calculator {"expression": "6 * 7"}\n/tool calculator {"expression": "1 / 0"}'
    traced = cli("agents", "send", "clerk", message, "--trace")
    assert traced.code == 0, traced.err
    assert re.sub(r"\d+\.\d+ ms", "N ms", traced.out) == snapshot  # durations vary; nothing else does
    plain = json.loads(cli("agents", "send", "clerk", message).out)  # without --trace: the reply as it came
    assert traced.out.split("--- trace:")[0] == plain["reply"] + "\n"  # with it: the answer, then the trace
    as_json = json.loads(cli("agents", "send", "clerk", message, "--trace", "-o", "json").out)
    without = json.loads(cli("agents", "send", "clerk", message, "-o", "json").out)  # the same document
    assert as_json.keys() == without.keys() and as_json["reply"].keys() == without["reply"].keys()
    reply = as_json["reply"]
    assert reply["reply"] == plain["reply"] and set(reply) >= {"tool_calls", "rounds"}
    assert [r["tool_calls"] for r in reply["rounds"]] == [["call_1", "call_2"], []]
    assert [(c["id"], c["outcome"], c["result"]) for c in reply["tool_calls"]][0] == ("call_1", "ok", {"result": 42})
    wasm = cli("agents", "send", "scorer", '{"n": 1}', "--json", "--trace")
    assert wasm.code == 0 and "no trace: scorer is not a config agent" in wasm.err and "--- trace" not in wasm.out
    bare = cli("agents", "send", "data-processor", "hi", "--trace")
    assert bare.code == 0 and "offline " in bare.out and "1 model round" in bare.out and "0 tool calls" in bare.out


def test_suspend_resume_remove(cli: Callable[..., CliResult], served: EngineProcess) -> None:
    with served.client() as client:
        agent_api.deploy(client, config_spec("temp"))
    assert "temp: suspended (Suspended" in cli("agents", "suspend", "temp").out
    again = cli("agents", "suspend", "temp")
    assert again.code == 1 and "cannot go from Suspended to Suspended" in again.err and "hint:" in again.err
    assert "temp: resumed (Active" in cli("agents", "resume", "temp").out
    assert "temp: removed (Inactive" in cli("agents", "remove", "temp").out
    missing = cli("agents", "status", "temp")
    assert missing.code == 1 and "no agent named 'temp'" in missing.err


def test_a_wrong_token_is_a_clear_error(cli: Callable[..., CliResult]) -> None:
    result = cli("agents", "suspend", "scorer", "--token", "wrong")
    assert result.code == 1 and "token is not valid for this engine" in result.err


def test_an_unreachable_engine_is_one_clear_line(run_cli: Callable[..., CliResult]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["health"], ["agents", "list"], ["agents", "send", "x", "hi"]):
        result = run_cli(*args, "--engine", url)
        assert result.code == 1 and result.out == ""
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
        assert f"cannot reach the engine at {url}" in result.err and "CAXTON_ENGINE_URL" in result.err


def test_server_start_on_a_busy_port_is_a_clear_error(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli("server", "start", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert result.code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.err and "--port" in result.err


def test_server_start_with_a_bad_config_is_a_clear_error(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    config = tmp_path / "caxton.yaml"
    config.write_text("server:\n  port: many\n")
    result = run_cli("server", "start", "--config", str(config))
    assert result.code == 1 and "server.port" in result.err and "Traceback" not in result.err
