"""Malicious WASM agents deployed next to a good one: each is contained and reported, the good one keeps serving."""

from __future__ import annotations

import pytest

from caxton.engine.core import Engine
from caxton.errors import AgentFailure, CaxtonError
from tests.engine.helpers import SCORER_WASM, wasm_spec, wat_module

LOOP = "(loop $forever (br $forever))"
MEMORY_BOMB = "(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable"
RECURSION = "(call $deep (i32.const 0)) drop"
DEEP = "(func $deep (param i32) (result i32) (call $deep (i32.add (local.get 0) (i32.const 1))))"

RUNTIME_ATTACKS = {
    "looper": (wat_module(LOOP), {"max_execution_time_ms": 50, "fuel": 10**12}),
    "burner": (wat_module(LOOP), {"max_execution_time_ms": 5000, "fuel": 100_000}),
    "bomber": (wat_module(MEMORY_BOMB), {"max_memory_bytes": "2MiB"}),
    "recurser": (wat_module(RECURSION, funcs=DEEP), {}),
}


def _good_agent_answers(engine: Engine) -> None:
    reply = engine.send("scorer", "still there?")
    assert reply["reply"]["agent"] == "scorer"


@pytest.mark.parametrize("name", sorted(RUNTIME_ATTACKS))
def test_a_misbehaving_agent_fails_alone(engine_inproc: Engine, name: str) -> None:
    module, limits = RUNTIME_ATTACKS[name]
    engine_inproc.deploy(wasm_spec("scorer"), SCORER_WASM)
    assert engine_inproc.deploy(wasm_spec(name, **limits), module).state == "Running"
    reasons = set()
    for _ in range(7):
        with pytest.raises(AgentFailure) as failed:
            engine_inproc.send(name, "attack")
        assert failed.value.http_status in (502, 503, 504) and failed.value.message
        reasons.add(getattr(failed.value, "reason", None))
        _good_agent_answers(engine_inproc)
    assert reasons - {"circuit_open"}, reasons  # the real cause was reported before the circuit opened
    detail = engine_inproc.agent(name)
    assert detail["state"] == "Running" and detail["runtime"][0]["failures"] >= 1
    lines = engine_inproc.agent_logs(name)["lines"]
    assert any("message failed" in line["message"] for line in lines)


@pytest.mark.parametrize(("name", "module", "limits", "expected"), [
    ("importer", wat_module(imports='(import "env" "system" (func $system (param i32)))'), {}, "env.system"),
    ("wasi", wat_module(imports='(import "wasi_snapshot_preview1" "fd_write" '
                                '(func $w (param i32 i32 i32 i32) (result i32)))'), {}, "fd_write"),
    ("huge", wat_module(pages=1) + b"\x00" * 0, {"max_module_size": 64}, "64"),
    ("initfail", wat_module(init="unreachable"), {}, ""),
])
def test_a_module_refused_at_deploy_is_reported_and_failed(
    engine_inproc: Engine, name: str, module: bytes, limits: dict[str, object], expected: str,
) -> None:
    engine_inproc.deploy(wasm_spec("scorer"), SCORER_WASM)
    with pytest.raises(CaxtonError) as refused:
        engine_inproc.deploy(wasm_spec(name, **limits), module)
    assert 400 <= refused.value.http_status < 500 and expected in refused.value.message
    _good_agent_answers(engine_inproc)
    if name != "huge":  # a too-large module is refused before anything is recorded
        assert engine_inproc.agent(name)["state"] == "Failed"
        assert any(e["what"] == "deploy_failed" for e in engine_inproc.events(agent=name)["events"])
    assert engine_inproc.agent("scorer")["state"] == "Running"
