"""The router's weights and conversation pins (no engine)."""

from __future__ import annotations

from typing import Any

from caxton.engine.serving.router import Backend, Route, Router
from caxton.engine.serving.runtime import ServingRuntime


class _Runtime:
    def start(self) -> None: ...

    def handle(self, envelope: dict[str, Any]) -> Any:
        return envelope["revision"]

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        return {}


def serving(revision: int) -> ServingRuntime:
    return ServingRuntime(_Runtime(), agent_id="a", name="a", kind="wasm", revision=revision, max_message_size=1024)


def pick(router: Router, conversation: str | None) -> int:
    chosen = router.acquire("a", conversation)
    assert chosen is not None
    chosen.release()
    return chosen.revision


def test_weights_split_new_conversations() -> None:
    router = Router()
    one, two = serving(1), serving(2)
    router.set(Route("a", (Backend(two, 20), Backend(one, 80)), sticky=True))
    got = [pick(router, f"conv-{i}") for i in range(2000)]
    assert 0.17 < got.count(2) / len(got) < 0.23


def test_a_conversation_stays_on_its_revision_when_weights_change() -> None:
    router = Router()
    one, two = serving(1), serving(2)
    router.swap("a", one)
    before = {f"c{i}": pick(router, f"c{i}") for i in range(300)}
    router.set(Route("a", (Backend(two, 50), Backend(one, 50)), sticky=True))
    during = {f"c{i}": pick(router, f"c{i}") for i in range(300)}
    router.set(Route("a", (Backend(two, 90), Backend(one, 10)), sticky=True))
    later = {f"c{i}": pick(router, f"c{i}") for i in range(300)}
    assert set(before.values()) == {1}
    assert during == before == later
    fresh = [pick(router, f"new-{i}") for i in range(300)]
    assert fresh.count(2) > 240


def test_weight_zero_backend_serves_only_its_pinned_conversations() -> None:
    router = Router()
    one, two = serving(1), serving(2)
    router.swap("a", one)
    assert pick(router, "old") == 1
    router.set(Route("a", (Backend(two, 100), Backend(one, 0)), sticky=True))
    assert pick(router, "old") == 1
    assert {pick(router, f"new-{i}") for i in range(100)} == {2}
    assert router.pins("a").on(1) == 1


def test_pins_are_journaled_only_while_a_rollout_records_them() -> None:
    router = Router()
    router.swap("a", serving(1))
    pick(router, "x")
    pins = router.pins("a")
    assert pins.take_journal() == []
    pins.journal = []
    pick(router, "y")
    pick(router, "y")
    assert pins.take_journal() == [("y", 1)]


def test_a_swap_moves_pinned_conversations_to_the_new_revision() -> None:
    router = Router()
    router.swap("a", serving(1))
    assert pick(router, "c") == 1
    router.swap("a", serving(2))
    assert pick(router, "c") == 2


def test_idle_pins_are_swept() -> None:
    router = Router()
    router.swap("a", serving(1))
    pick(router, "c")
    pins = router.pins("a")
    assert pins.sweep(now=10**9) == 1
    assert pins.pins == {}
