"""The instance pool of one WASM revision: grows as messages overlap, each instance its own, stop waits for all.

The hold agent (``tests.support.hold``) reports per instance how many messages it
handled and when each message began and ended, so overlap and instance identity are
read from the guest's own replies, never from a timing bound.
"""

from __future__ import annotations

import threading
from typing import Any

from caxton.engine import wasm_budget
from caxton.sandbox import runtime
from caxton.spec.agent import parse_agent
from tests.support.hold import hold_module, parse_hold

LIMITS = {"fuel": 10**12, "max_execution_time_ms": 10_000}


def _concurrently(rt: runtime.WasmAgentRuntime, count: int) -> list[dict[str, int]]:
    replies: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            replies.append(parse_hold(rt.handle({"n": n})))
        except BaseException as error:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return replies


def test_a_pool_of_four_runs_four_overlapping_messages_in_four_instances(make_runtime: Any) -> None:
    rt = make_runtime(hold_module(300), agent="pooled", pool_size=4, **LIMITS)
    assert rt.stats()["instances"] == 1  # the first instance at start; the rest as messages overlap
    replies = _concurrently(rt, 4)
    assert [reply["seen"] for reply in replies] == [1, 1, 1, 1]  # each instance saw one message
    assert max(reply["start"] for reply in replies) < min(reply["end"] for reply in replies)  # all ran at once
    stats = rt.stats()
    assert (stats["instances"], stats["pool_size"], stats["restarts"], stats["in_flight"]) == (4, 4, 0, 0)
    assert parse_hold(rt.handle({"n": 4}))["seen"] == 2  # instances are reused, never made twice


def test_a_pool_of_one_runs_messages_one_at_a_time_in_one_instance(make_runtime: Any) -> None:
    rt = make_runtime(hold_module(50), agent="serial", pool_size=1, **LIMITS)
    replies = sorted(_concurrently(rt, 3), key=lambda reply: reply["seen"])
    assert [reply["seen"] for reply in replies] == [1, 2, 3]
    assert all(earlier["end"] <= later["start"] for earlier, later in zip(replies, replies[1:], strict=False))
    assert rt.stats()["instances"] == 1


def test_a_pool_grows_only_as_far_as_messages_overlap(make_runtime: Any) -> None:
    """Messages one after another stay in the first instance (its state, like an actor, at low load)."""
    rt = make_runtime(hold_module(1), agent="quiet", pool_size=4, **LIMITS)
    assert [parse_hold(rt.handle({"n": n}))["seen"] for n in range(3)] == [1, 2, 3]
    assert rt.stats()["instances"] == 1


def test_stop_waits_for_the_messages_in_every_instance(make_runtime: Any) -> None:
    rt = make_runtime(hold_module(300), agent="stopping", pool_size=3, **LIMITS)
    replies: list[Any] = []
    threads = [threading.Thread(target=lambda: replies.append(rt.handle({}))) for _ in range(3)]
    for thread in threads:
        thread.start()
    while rt.stats()["instances"] < 3:  # each message has its instance (made by it): all three are running
        threading.Event().wait(0.002)
    rt.stop()  # returns once every instance is back, then frees them
    for thread in threads:
        thread.join()
    assert len(replies) == 3 and all(parse_hold(reply)["seen"] == 1 for reply in replies)
    assert rt.stats()["state"] == "stopped" and rt.stats()["memory_bytes"] == 0


def test_reserved_memory_is_each_instance_limit_times_the_pool() -> None:
    """The one figure an engine-wide memory budget counts for a revision (``wasm_budget.reserved``)."""
    base = {"name": "big", "version": "1.0.0", "kind": "wasm", "module": "big.wasm"}
    sized = parse_agent({**base, "resource_limits": {"max_memory_bytes": "8MiB", "pool_size": 3}})
    assert wasm_budget.reserved(sized) == 3 * 8 * 1024 * 1024
    capped = parse_agent({**base, "resource_limits": {"max_memory_bytes": "1GiB", "pool_size": 2},
                          "security_policy": {"max_memory_pages": 16}})
    assert wasm_budget.reserved(capped) == 2 * 16 * 65536  # max_memory_pages caps each instance
    default = parse_agent(base)
    assert wasm_budget.pool_size(default) == wasm_budget.default_pool_size() <= wasm_budget.DEFAULT_POOL_SIZE
    assert wasm_budget.reserved(default) == wasm_budget.default_pool_size() * 16 * 1024 * 1024
    config = parse_agent({"name": "chat", "version": "1.0.0", "system_prompt": "hi"})
    assert wasm_budget.reserved(config) == 0
