"""The built-in tools called directly: arguments, results, limits, and http_client's allow-list over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from caxton import errors
from caxton.llm.tools import base, builtin, http
from caxton.spec.tools import BUILTIN_TOOLS
from tests.support.http_target import HttpTarget, running_http_target


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with running_http_target() as server:
        yield server


def call(name: str, arguments: dict[str, Any], *, hosts: tuple[str, ...] = (), seconds: float = 5.0) -> Any:
    tool = builtin.BUILTIN.build(name, base.ToolContext(agent="t", allowed_hosts=hosts))
    assert tool is not None
    return tool.call(arguments, time.monotonic() + seconds)


def failure(name: str, arguments: dict[str, Any], **kwargs: Any) -> errors.ToolFailure:
    with pytest.raises(errors.ToolFailure) as caught:
        call(name, arguments, **kwargs)
    return caught.value


def test_every_advertised_built_in_is_implemented_and_nothing_else() -> None:
    assert sorted(builtin.BUILTIN.names()) == sorted(BUILTIN_TOOLS)
    for name in BUILTIN_TOOLS:
        tool = builtin.BUILTIN.build(name, base.ToolContext(agent="t"))
        assert tool is not None and tool.name == name and tool.parameters["type"] == "object"


def test_calculator_walks_arithmetic_and_refuses_anything_else() -> None:
    assert call("calculator", {"expression": "2 * (3 + 4) ** 2 - 10 / 4"}) == {"result": 95.5}
    assert call("calculator", {"expression": "sqrt(16) + max(1, 7) + round(pi, 2)"}) == {"result": 14.14}
    for bad in ("__import__('os')", "(1).__class__", "'a' * 3", "[1, 2]", "x"):
        assert failure("calculator", {"expression": bad}).reason == "invalid_arguments", bad
    assert "too large" in failure("calculator", {"expression": "9 ** 99999"}).message
    assert "division by zero" in failure("calculator", {"expression": "1 / 0"}).message


def test_csv_parser_reads_rows_with_and_without_a_header() -> None:
    text = "name,qty\nespresso,2\nlatte,1\n"
    assert call("csv_parser", {"text": text}) == {
        "columns": ["name", "qty"], "rows": [{"name": "espresso", "qty": "2"}, {"name": "latte", "qty": "1"}],
        "row_count": 2, "truncated": False}
    raw = call("csv_parser", {"text": "a;b\nc;d\n", "delimiter": ";", "header": False, "max_rows": 1})
    assert raw == {"rows": [["a", "b"]], "row_count": 1, "truncated": True}


def test_json_parser_picks_by_path_and_says_where_a_path_misses() -> None:
    text = '{"items": [{"name": "tea"}, {"name": "coffee"}]}'
    assert call("json_parser", {"text": text, "path": "items[1].name"}) == {"value": "coffee"}
    assert call("json_parser", {"text": "[1, 2]"}) == {"value": [1, 2]}
    assert "nothing at" in failure("json_parser", {"text": text, "path": "items[5]"}).message
    assert failure("json_parser", {"text": "{nope"}).reason == "invalid_arguments"


def test_json_validator_lists_each_problem_with_its_path() -> None:
    schema = {"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}, "required": ["qty"]}
    assert call("json_validator", {"document": {"qty": 2}, "schema": schema}) == {"valid": True, "errors": []}
    found = call("json_validator", {"document": {"qty": 0}, "schema": schema})
    assert found["valid"] is False and found["errors"][0]["path"] == "$.qty"
    assert "not valid JSON Schema" in failure("json_validator", {"document": 1, "schema": {"type": 12}}).message


def test_memory_tools_without_an_engine_memory_fail_clearly() -> None:
    assert "without memory" in failure("memory_search", {"query": "x"}).message


def test_http_client_fetches_from_an_allowed_host_and_posts_json(target: HttpTarget) -> None:
    hosts = (f"127.0.0.1:{target.port}",)
    got = call("http_client", {"url": f"{target.url}/hello"}, hosts=hosts)
    assert got["status"] == 200 and got["body"] == "hello from the target"
    posted = call("http_client", {"method": "POST", "url": f"{target.url}/echo", "body": {"a": 1}},
                  hosts=("127.0.0.1",))
    assert posted["body"] == '{"received": "{\\"a\\":1}"}'
    assert call("http_client", {"url": f"{target.url}/here"}, hosts=hosts)["body"] == "hello from the target"


def test_http_client_refuses_hosts_off_the_list_redirects_off_it_huge_and_slow_answers(target: HttpTarget) -> None:
    hits = len(target.hits)
    refused = failure("http_client", {"url": f"{target.url}/hello"}, hosts=("127.0.0.1:1",))
    assert refused.reason == "not_allowed" and "allowed_hosts" in (refused.hint or "")
    assert len(target.hits) == hits  # nothing was sent
    assert failure("http_client", {"url": f"http://localhost:{target.port}/hello"},
                   hosts=("127.0.0.1",)).reason == "not_allowed"
    assert failure("http_client", {"url": f"{target.url}/away"}, hosts=("127.0.0.1",)).reason == "not_allowed"
    assert failure("http_client", {"url": f"{target.url}/big"}, hosts=("127.0.0.1",)).reason == "too_large"
    target.slow_seconds = 2.0
    assert failure("http_client", {"url": f"{target.url}/slow"}, hosts=("127.0.0.1",), seconds=0.3).reason == "timeout"
