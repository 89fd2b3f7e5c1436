"""Standard JSON only (issue 18, item 4): NaN/Infinity refused on input (422 with the path), never emitted;
every 502 of a bad reply says what was wrong with it. Real HTTP against one engine, real WASM agents."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import wasmtime

from caxton import errors
from caxton.llm import providers
from caxton.spec import project
from caxton.spec.jsonvalues import JsonProblem, loads_strict, non_finite
from tests.engine.helpers import deploy_body
from tests.engine.test_config_runtime import ENV, make_runtime, make_spec, send
from tests.support.engine import EngineProcess
from tests.support.openai_server import running_openai_server

V1 = "/api/v1"

_FIXED_REPLY = """
(module
  (memory (export "memory") 2)
  (data (i32.const 0) "{data}")
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "caxton_handle") (param i32 i32) (result i64) (i64.const {length})))
"""

#: agent name -> the bytes its every reply is, and what the 502 must say about it
REPLIES = {
    "nan": (b'{"score": NaN}', "non-finite number NaN at $.score"),
    "inf": (b'{"a": [1, -Infinity]}', "non-finite number -Infinity at $.a[1]"),
    "deep": (b"[" * 30_000 + b"]" * 30_000, "nests 30000 levels deep; the limit is 64"),
    "surrogate": (b'{"text": "\\ud800!"}', "lone UTF-16 surrogate at $.text"),
    "garbage": (b"hello", "is not UTF-8 JSON (Expecting value at line 1 column 1)"),
    "latin1": (b'"caf\xe9"', "is not UTF-8 JSON (invalid UTF-8"),
}


def fixed_reply(reply: bytes) -> bytes:
    data = "".join(f"\\{b:02x}" for b in reply)
    return bytes(wasmtime.wat2wasm(_FIXED_REPLY.format(data=data, length=len(reply))))


def spec(name: str) -> dict[str, object]:
    return {"name": name, "version": "1.0.0", "kind": "wasm", "module": f"{name}.wasm"}


@pytest.fixture(scope="module")
def replies_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("jsonvalues")
    config = root / "caxton.yaml"
    config.write_text("memory:\n  enabled: false\n")
    process = EngineProcess(root / "data", config=config)
    process.start()
    for name, (reply, _) in {**REPLIES, "ok": (b'{"ok": "NaN"}', "")}.items():
        deployed = httpx.put(process.url + f"{V1}/agents/{name}", json=deploy_body(spec(name), fixed_reply(reply)),
                             timeout=60)
        assert deployed.status_code == 200, deployed.text
    yield process
    process.terminate()


def post(engine: EngineProcess, path: str, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(engine.url + path, content=body, headers={"Content-Type": content_type}, timeout=30)


@pytest.mark.parametrize(("body", "constant", "path"), [
    (b'{"content": {"a": [1, NaN]}}', "NaN", "$.content.a[1]"),
    (b'{"content": Infinity}', "Infinity", "$.content"),
    (b'{"content": {"odd key": -Infinity}}', "-Infinity", '$.content["odd key"]'),
])
def test_non_finite_numbers_in_a_request_are_refused_with_their_path(replies_engine: EngineProcess, body: bytes,
                                                                     constant: str, path: str) -> None:
    response = post(replies_engine, f"{V1}/agents/ok/messages", body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["details"] == {"path": path}
    assert error["message"] == f"the JSON body holds {constant} at {path}: not standard JSON"
    assert "finite number" in error["hint"]


def test_non_finite_numbers_are_refused_on_every_route(replies_engine: EngineProcess) -> None:
    deploy = httpx.put(replies_engine.url + f"{V1}/agents/x", content=b'{"spec": {"name": "x", "n": NaN}}',
                       headers={"Content-Type": "application/json"}, timeout=30)
    assert deploy.status_code == 422 and deploy.json()["error"]["details"] == {"path": "$.spec.n"}
    lines = b'{"kind": "header"}\n{"kind": "entity", "score": -Infinity}\n'
    imported = post(replies_engine, f"{V1}/memory/import", lines, "application/x-ndjson")
    assert imported.status_code == 422 and imported.json()["error"]["details"] == {"path": "line 2: $.score"}


def test_the_words_inside_strings_are_just_text(replies_engine: EngineProcess) -> None:
    response = post(replies_engine, f"{V1}/agents/ok/messages", json.dumps({"content": "NaN, Infinity"}).encode())
    assert response.status_code == 200, response.text
    assert response.json()["reply"] == {"ok": "NaN"}


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_a_reply_that_is_not_standard_json_is_a_502_with_its_reason(replies_engine: EngineProcess, name: str) -> None:
    response = post(replies_engine, f"{V1}/agents/{name}/messages", b'{"content": 1}')
    assert response.status_code == 502, response.text
    error = loads_strict(response.content)["error"]  # the answer itself is standard JSON
    assert error["code"] == "agent_failure" and error["details"]["reason"] == "bad_reply"
    assert REPLIES[name][1] in error["message"], error["message"]
    assert "docs/wasm-abi.md" in error["hint"]


def test_json_lines_name_the_line() -> None:
    assert non_finite(b'{"a": 1}\n{"b": [NaN]}\n') == ("NaN", "line 2: $.b[0]")
    assert non_finite(b'{"a": "NaN"}') is None and non_finite(b"not json NaN") is None


def test_strict_loads_keeps_standard_json_and_surrogate_pairs() -> None:
    assert loads_strict(b'{"smile": "\\ud83d\\ude00", "n": 1e308}') == {"smile": "\U0001F600", "n": 1e308}
    with pytest.raises(JsonProblem, match=r"non-finite number NaN at \$\[0\]\.x"):
        loads_strict(b'[{"x": NaN}]')


def test_a_provider_reply_that_is_not_standard_json_is_a_bad_response(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "sk-json-test")
    with running_openai_server() as server:
        registry = providers.build_providers(project.LLMProviders(
            openai=project.OpenAIProvider(base_url=server.url, api_key_env=ENV)))
        runtime = make_runtime(make_spec(llm={"provider": "openai", "model": "m"}), registry=registry)
        for body, said in [('{"choices": [{"message": {"content": "\\ud800"}}]}', "lone UTF-16 surrogate"),
                           ('{"choices": [{"message": {"content": "hi"}}], "usage": {"total_tokens": NaN}}',
                            "non-finite number NaN at $.usage.total_tokens")]:
            server.fail(1, status=200, body=body)
            with pytest.raises(errors.ConfigAgentFailure) as caught:
                send(runtime, "hello")
            assert caught.value.reason == "bad_response" and said in caught.value.message
            assert caught.value.http_status == 502 and caught.value.details["reason"] == "bad_response"


def test_every_agent_failure_carries_a_reason() -> None:
    assert errors.AgentFailure("boom").to_dict()["details"] == {"reason": "internal"}
    assert errors.AgentFailure("boom", reason="trap", details={"agent": "a"}).details == {"reason": "trap", "agent": "a"}




def integer_parameters(engine: EngineProcess) -> list[tuple[str, str, str, str]]:
    """(method, path template, parameter, where) of every integer path or query parameter in the OpenAPI document."""
    document = httpx.get(engine.url + "/openapi.json", timeout=30).json()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
                if "integer" in types:
                    found.append((method.upper(), path, parameter["name"], parameter["in"]))
    return found


def test_integers_beyond_64_bits_are_422_on_every_endpoint(replies_engine: EngineProcess) -> None:
    """Found from the OpenAPI document, so a new endpoint is covered too (SQLite would raise OverflowError)."""
    parameters = integer_parameters(replies_engine)
    assert len(parameters) >= 8, parameters
    for method, template, name, where in parameters:
        for value in ("99999999999999999999", str(2**63), str(-(2**63) - 1)):
            path = template
            for other in [part[1:-1] for part in template.split("/") if part.startswith("{")]:
                path = path.replace("{" + other + "}", value if (other == name and where == "path") else "1")
            params = {name: value} if where == "query" else None
            headers = {name: value} if where == "header" else None  # the event stream's Last-Event-ID
            response = httpx.request(method, replies_engine.url + path, params=params, headers=headers, timeout=30,
                                     json={} if method in ("POST", "PUT", "PATCH") else None)
            assert response.status_code == 422, (method, path, name, value, response.text)
            assert response.json()["error"]["code"] == "invalid_input"
