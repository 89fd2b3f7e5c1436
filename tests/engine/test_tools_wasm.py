"""WASM tools through an in-process engine: a config agent calls the quickstart's word-count tool (offline
provider ``/tool`` lines); a tool that traps, loops past its fuel, answers invalid JSON or 10 MB fails that
call only, as a typed result the model sees, and the engine and its other agents keep serving."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import wasmtime
import yaml

from caxton import errors
from tests.engine.helpers import SCORER_WASM, wat_module
from tests.support.paths import EXAMPLES

if TYPE_CHECKING:
    from caxton.engine.core import Engine

SCORER_SPEC: dict[str, Any] = {"name": "scorer", "version": "1.0.0", "kind": "wasm", "module": "scorer.wasm"}
WORD_COUNT = (EXAMPLES / "wasm" / "word-count.wasm").read_bytes()
TEXT_TOOL = {"description": "a test tool", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}

#: Modules that misbehave on every message (the helpers' boilerplate replies {"ok":true} otherwise).
TRAPS = wat_module("unreachable")
LOOPS = wat_module("(loop $forever (br $forever))")
NOT_JSON = bytes(wasmtime.wat2wasm("""
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "not json")
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "caxton_handle") (param i32 i32) (result i64) (i64.const 8)))
"""))
#: A valid JSON string of 10 MiB: a quote, 10 MiB - 2 of "a", a quote (161 pages of memory).
TEN_MB = 10 * 1024 * 1024
HUGE = bytes(wasmtime.wat2wasm(f"""
(module
  (memory (export "memory") 161)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "caxton_handle") (param i32 i32) (result i64)
    (i32.store8 (i32.const 0) (i32.const 34))
    (memory.fill (i32.const 1) (i32.const 97) (i32.const {TEN_MB - 2}))
    (i32.store8 (i32.const {TEN_MB - 1}) (i32.const 34))
    (i64.const {TEN_MB})))
"""))


def wasm_tool(name: str, *, tool: dict[str, Any] | None = None, **limits: Any) -> dict[str, Any]:
    limits = {"fuel": 1_000_000, "max_execution_time_ms": 500, **limits}
    return {"name": name, "version": "1.0.0", "kind": "wasm", "module": f"{name}.wasm",
            "tool": tool or TEXT_TOOL, "resource_limits": limits}


def deploy(engine: Engine, spec: dict[str, Any], module: bytes | None = None) -> None:
    engine.deploy(spec, module)


def caller(name: str, tools: list[str]) -> dict[str, Any]:
    """A config agent that passes the message on as is (its ``/tool`` lines reach the offline provider)."""
    return {"name": name, "version": "1.0.0", "system_prompt": f"You are {name}.", "tools": tools}


def word_count_spec() -> dict[str, Any]:
    """The example's agent file (its frontmatter) as the spec to deploy."""
    frontmatter = (EXAMPLES / "agents" / "word-count.md").read_text().split("---\n")[1]
    spec: dict[str, Any] = yaml.safe_load(frontmatter)
    return spec


def call(engine: Engine, agent: str, *lines: str) -> dict[str, Any]:
    reply = engine.send(agent, "\n".join(f"/tool {line}" for line in lines))["reply"]
    assert isinstance(reply, dict)
    return reply


def test_a_config_agent_calls_the_example_word_count_tool(engine_inproc: Engine) -> None:
    deploy(engine_inproc, word_count_spec(), WORD_COUNT)
    deploy(engine_inproc, caller("editor", ["word-count", "calculator"]))
    reply = call(engine_inproc, "editor", 'word-count {"text": "the quick brown fox"}',
                 'calculator {"expression": "4 * 2"}')
    assert [(c["tool"], c["outcome"], c["result"]) for c in reply["tool_calls"]] == [
        ("word-count", "ok", {"words": 4}), ("calculator", "ok", {"result": 8})]
    assert '### tool call_1\n{"words":4}' in reply["reply"]
    # the tool's arguments were checked against its schema before the module ran
    bad = call(engine_inproc, "editor", 'word-count {"text": 7}')["tool_calls"][0]
    assert bad["outcome"] == "invalid_arguments" and "text: 7 is not of type 'string'" in bad["result"]["error"]["message"]
    # the module is an agent too: a message with the same content gets the same answer
    assert engine_inproc.send("word-count", {"text": "a b"})["reply"] == {"words": 2}


def test_the_model_sees_the_tools_description_and_schema(engine_inproc: Engine) -> None:
    deploy(engine_inproc, word_count_spec(), WORD_COUNT)
    deploy(engine_inproc, caller("editor", ["word-count"]))
    route = engine_inproc.router.get("editor")
    assert route is not None
    runtime: Any = route.backends[0].serving.runtime
    [declared] = runtime._tool_loop.registry.function_specs()
    assert declared["function"]["name"] == "word-count"
    assert declared["function"]["description"].startswith("Count the words of a text")
    assert declared["function"]["parameters"]["required"] == ["text"]


@pytest.mark.parametrize(("module", "limits", "outcome", "said"), [
    (TRAPS, {}, "failed", "(trap)"),
    (LOOPS, {}, "failed", "(out_of_fuel)"),
    (NOT_JSON, {}, "failed", "(bad_reply)"),
    (HUGE, {"fuel": 100_000_000, "max_memory_bytes": 11 * 1024 * 1024}, "too_large", "(reply_too_large)"),
    (HUGE, {"fuel": 100_000_000, "max_memory_bytes": 11 * 1024 * 1024, "max_message_size": 16 * 1024 * 1024}, "too_large",
     "over 262,144"),
], ids=["trap", "fuel", "invalid-json", "10MB-over-its-reply-limit", "10MB-over-the-result-limit"])
def test_a_bad_tool_fails_that_call_only(engine_inproc: Engine, module: bytes, limits: dict[str, Any],
                                         outcome: str, said: str) -> None:
    deploy(engine_inproc, wasm_tool("bad-tool", **limits), module)
    deploy(engine_inproc, SCORER_SPEC, SCORER_WASM)
    deploy(engine_inproc, caller("caller", ["bad-tool", "calculator"]))
    reply = call(engine_inproc, "caller", 'bad-tool {"text": "x"}', 'calculator {"expression": "1 + 1"}')
    bad, good = reply["tool_calls"]
    assert bad["outcome"] == outcome and said in bad["result"]["error"]["message"], bad
    assert "'bad-tool'" in bad["result"]["error"]["message"]
    assert good["outcome"] == "ok" and good["result"] == {"result": 2}
    assert "### tool call_1\n{\"error\"" in reply["reply"]  # the model got the failure as the result
    assert engine_inproc.send("scorer", "still here")["reply"]["agent"] == "scorer"
    assert call(engine_inproc, "caller", 'calculator {"expression": "2 + 2"}')["tool_calls"][0]["result"] == {"result": 4}


def test_a_tools_own_error_reply_is_a_failed_call(engine_inproc: Engine) -> None:
    deploy(engine_inproc, word_count_spec(), WORD_COUNT)
    deploy(engine_inproc, caller("editor", ["word-count"]))
    # word-count answers {"error": "no text argument"} without a "text" key; its schema requires one, so
    # the loop refuses the call first: the module's own error shows through an agent without the schema
    deploy(engine_inproc, {**word_count_spec(), "name": "loose-count", "tool": TEXT_TOOL}, WORD_COUNT)
    deploy(engine_inproc, caller("loose", ["loose-count"]))
    failed = call(engine_inproc, "loose", 'loose-count {"other": 1}')["tool_calls"][0]
    assert failed["outcome"] == "failed" and "(agent_error)" in failed["result"]["error"]["message"]
    assert "no text argument" in failed["result"]["error"]["message"]


def test_a_tool_that_is_not_serving_is_a_failed_call(engine_inproc: Engine) -> None:
    deploy(engine_inproc, word_count_spec(), WORD_COUNT)
    deploy(engine_inproc, caller("editor", ["word-count"]))
    engine_inproc.suspend("word-count")
    failed = call(engine_inproc, "editor", 'word-count {"text": "a"}')["tool_calls"][0]
    assert failed["outcome"] == "failed" and "suspended" in failed["result"]["error"]["message"]


def test_a_config_agent_cannot_list_a_wasm_agent_that_is_no_tool(engine_inproc: Engine) -> None:
    deploy(engine_inproc, SCORER_SPEC, SCORER_WASM)
    with pytest.raises(errors.CaxtonError) as caught:
        deploy(engine_inproc, caller("caller", ["scorer"]))
    assert "no tool 'scorer'" in caught.value.message



def test_the_example_module_is_the_build_of_its_wat() -> None:
    assert bytes(wasmtime.wat2wasm((EXAMPLES / "wasm" / "word-count.wat").read_text())) == WORD_COUNT


def test_an_agent_using_a_wasm_tool_comes_back_after_a_restart(make_engine_inproc: Any, tmp_path: Any) -> None:
    """Its revision finds the tool in the store when it starts, whichever of the two the engine recovers first."""
    first = make_engine_inproc(data_dir=tmp_path / "kept")
    deploy(first, word_count_spec(), WORD_COUNT)
    deploy(first, caller("editor", ["word-count"]))
    first.stop()
    again = make_engine_inproc(data_dir=tmp_path / "kept")
    assert call(again, "editor", 'word-count {"text": "back again"}')["tool_calls"][0]["result"] == {"words": 2}
