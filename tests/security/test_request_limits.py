"""Request limits on every route (issue 12, item 4): body size 413, JSON nesting 400, headers 431; no 5xx.

Real HTTP against one engine; the depth scan itself also directly.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from caxton.engine.limits import MAX_HEADER_BYTES, MAX_HEADERS, MAX_JSON_DEPTH, json_depth
from tests.engine.helpers import config_spec, deploy_body
from tests.support.engine import EngineProcess

V1 = "/api/v1"
MESSAGES = f"{V1}/agents/echo/messages"


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def test_json_depth_counts_arrays_and_objects_but_not_brackets_in_strings() -> None:
    assert json_depth(b'{"content": "hi"}') == 0  # fast path: too few brackets to be deep
    assert json_depth(nested(100).encode()) == 100
    assert json_depth(('{"a":' * 70 + "1" + "}" * 70).encode()) == 70
    text = json.dumps({"content": "[" * 500 + "{" * 500, "x": [[1]]}).encode()
    assert json_depth(text) == 3  # the object, "x" and its inner list
    escaped = json.dumps({"content": 'quote \\" then [[[' * 100}).encode()
    assert json_depth(escaped) == 1
    assert json_depth(json.dumps([[i] for i in range(1000)]).encode()) == 2  # many brackets, shallow


@pytest.fixture(scope="module")
def limited_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("limits")
    process = EngineProcess(root / "data", env={"CAXTON_MAX_REQUEST_SIZE": "65536"})
    process.start()
    assert httpx.put(process.url + f"{V1}/agents/echo", json=deploy_body(config_spec("echo"))).status_code == 200
    yield process
    process.terminate()


def post(engine: EngineProcess, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(engine.url + MESSAGES, content=body, headers={"Content-Type": "application/json", **headers},
                      timeout=30)


def test_deep_json_is_refused_with_400_at_any_depth(limited_engine: EngineProcess) -> None:
    ok = post(limited_engine, f'{{"content": {nested(MAX_JSON_DEPTH - 1)}}}'.encode())
    assert ok.status_code == 200, ok.text
    for depth in (MAX_JSON_DEPTH + 1, 5_000, 30_000):  # 30,000 would be a RecursionError in json.loads
        response = post(limited_engine, f'{{"content": {nested(depth)}}}'.encode())
        assert response.status_code == 400, (depth, response.text)
        error = response.json()["error"]
        assert error["code"] == "json_too_deep"
        assert error["message"] == f"the JSON body nests {depth + 1} levels deep; the limit is {MAX_JSON_DEPTH}"
    deploy = httpx.put(limited_engine.url + f"{V1}/agents/deep", content=('{"spec":' * 200 + "1" + "}" * 200).encode(),
                       headers={"Content-Type": "application/json"})
    assert deploy.status_code == 400 and deploy.json()["error"]["code"] == "json_too_deep"


def test_brackets_inside_strings_do_not_count(limited_engine: EngineProcess) -> None:
    response = post(limited_engine, json.dumps({"content": "[" * 5_000}).encode())
    assert response.status_code == 200, response.text


def test_a_chunked_deep_body_is_refused_too(limited_engine: EngineProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"content": '
        yield b"[" * 10_000
        yield b"]" * 10_000
        yield b"}"

    response = httpx.post(limited_engine.url + MESSAGES, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "json_too_deep"


def test_an_oversized_body_is_refused_with_413_declared_or_streamed(limited_engine: EngineProcess) -> None:
    big = json.dumps({"content": "x" * 70_000}).encode()
    declared = post(limited_engine, big)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "payload_too_large"
    streamed = httpx.post(limited_engine.url + MESSAGES, content=iter([big[:40_000], big[40_000:]]),
                          headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and "server.max_request_size" in streamed.json()["error"]["hint"]


def test_huge_or_too_many_headers_get_431(limited_engine: EngineProcess) -> None:
    big = httpx.get(limited_engine.url + f"{V1}/agents", headers={"X-Big": "a" * (MAX_HEADER_BYTES + 1)})
    assert big.status_code == 431 and big.json()["error"]["code"] == "headers_too_large"
    many = httpx.get(limited_engine.url + f"{V1}/agents", headers={f"X-H{i}": "1" for i in range(MAX_HEADERS + 1)})
    assert many.status_code == 431 and f"the limit is {MAX_HEADERS}" in many.json()["error"]["message"]
    on_post = post(limited_engine, b'{"content": 1}', **{"X-Big": "a" * (MAX_HEADER_BYTES + 1)})
    assert on_post.status_code == 431
    assert httpx.get(limited_engine.url + f"{V1}/agents", headers={"X-Fine": "a" * 8000}).status_code == 200


def test_a_megabyte_of_headers_is_refused_without_a_5xx(limited_engine: EngineProcess) -> None:
    head = (f"GET {V1}/agents HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "X-Big: " + "a" * 1_000_000 + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", limited_engine.port), timeout=30) as sock:
        sock.sendall(head)
        status = sock.recv(200).split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 4"), status
    assert httpx.get(limited_engine.url + f"{V1}/health").status_code == 200


def test_nothing_here_made_a_5xx(limited_engine: EngineProcess) -> None:
    log = limited_engine.log_text()
    assert "Traceback" not in log and "RecursionError" not in log, log
