"""The engine's apply runner in-process: only the change phase of applies is serialised, and a
submission arriving during another's change phase waits for it (a bounded time) instead of failing.
On both state backends (``store_url``: SQLite, PostgreSQL): applies, the lease and rollouts are store records."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from caxton.engine import applies
from caxton.engine.core import Engine
from caxton.engine.intake import Prepared
from caxton.engine.state.records import Source
from caxton.errors import Conflict
from tests.rollouts import agents
from tests.rollouts.conftest import _echo_engine


@pytest.fixture
def echo_engine(tmp_path: Path, store_url: str | None) -> Iterator[Engine]:
    """The rollouts' ``echo_engine``, on each state backend."""
    yield from _echo_engine(tmp_path, store_url=store_url)


def change(name: str, version: int, action: str) -> dict[str, Any]:
    return {"id": name, "action": action, "strategy": "immediate", "spec": agents.spec(name, version),
            "module": base64.b64encode(agents.module(version)).decode()}


def submission(engine: Engine, serial: int, *changes: dict[str, Any]) -> dict[str, Any]:
    """A submission made at state ``serial``, holding the apply lock (taken from whoever had it)."""
    engine.lock.release(None, force=True)
    lease = engine.lock.acquire("test", "", 30.0)
    return {"plan_id": f"plan-{changes[0]['id']}", "engine_serial": serial, "lock_token": lease.token,
            "changes": list(changes)}


def final(engine: Engine, apply_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        view = asyncio.run(engine.applies.follow(apply_id, wait=1.0))
        if view["status"] in applies.FINAL:
            return view
        assert time.monotonic() < deadline, view


def test_a_submission_waits_for_the_change_phase_of_another(echo_engine: Engine) -> None:
    serial = echo_engine.store.serial()
    with echo_engine.ops.lock:  # the first apply's change blocks here: its change phase lasts until released
        first = echo_engine.applies.submit(submission(echo_engine, serial, change("echo", 2, "update")))
        second: dict[str, Any] = {}
        body = submission(echo_engine, serial, change("other", 1, "create"))
        waiting = threading.Thread(target=lambda: second.update(echo_engine.applies.submit(body)))
        waiting.start()
        waiting.join(0.3)
        assert waiting.is_alive() and not second  # still waiting for the first apply's change phase
    waiting.join(15)
    assert final(echo_engine, first["id"])["status"] == "succeeded"
    done = final(echo_engine, second["id"])  # not stale: the first apply changed echo, not other
    assert done["status"] == "succeeded" and done["results"][0]["status"] == "done"
    assert {a.id: a.revision for a in echo_engine.snapshot().agents} == {"echo": 2, "other": 1}
    listed = echo_engine.applies.recent(5)["applies"]
    assert [a["id"] for a in listed] == [second["id"], first["id"]]


def test_the_wait_for_another_change_phase_is_bounded(echo_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(applies, "CHANGE_WAIT", 0.2)
    serial = echo_engine.store.serial()
    with echo_engine.ops.lock:
        first = echo_engine.applies.submit(submission(echo_engine, serial, change("echo", 2, "update")))
        with pytest.raises(Conflict, match=f"apply {first['id']} .* is still making its changes"):
            echo_engine.applies.submit(submission(echo_engine, serial, change("other", 1, "create")))
    assert final(echo_engine, first["id"])["status"] == "succeeded"


LONG = {"strategy": "canary", "steps": [50, 100], "interval": "60s"}


def test_the_engine_decides_from_its_own_rollout_not_from_the_plan(echo_engine: Engine) -> None:
    """The candidate's spec leaves the rollout alone; the stable spec aborts it (whatever the plan said)."""
    echo_engine.rollouts.update(Prepared.of(agents.spec("echo", 2, LONG), agents.module(2)), Source(actor="test"),
                           strategy="canary", apply_id=None)
    rollout = echo_engine.rollouts.active("echo")
    assert rollout is not None and rollout.status == "running"
    live = {a.id: a for a in echo_engine.snapshot().agents}["echo"]  # the stable revision, and the rollout in flight
    assert (live.revision, live.version) == (1, "1.0.1") and live.rollout is not None
    assert (live.rollout.id, live.rollout.status) == (rollout.id, "running")
    assert (live.rollout.step, live.rollout.steps) == (1, 2)
    assert (live.rollout.stable_revision, live.rollout.stable_version) == (1, "1.0.1")
    assert (live.rollout.candidate_revision, live.rollout.candidate_version) == (2, "1.0.2")
    assert live.rollout.candidate_digest == echo_engine.store.revision("echo", 2).spec_digest
    serial = echo_engine.store.serial()
    same = {**change("echo", 2, "update"), "strategy": "canary", "spec": agents.spec("echo", 2, LONG)}
    left = final(echo_engine, echo_engine.applies.submit(submission(echo_engine, serial, same))["id"])
    assert left["status"] == "succeeded" and left["results"][0]["status"] == "unchanged"
    assert left["results"][0]["message"] == (f"canary rollout {rollout.id} to 1.0.2 (at step 1/2) already in "
                                             "progress: left as it is")
    assert echo_engine.rollouts.active("echo") is rollout

    stable = {**change("echo", 1, "update"), "strategy": "canary"}  # the plan said canary: the engine aborts
    back = final(echo_engine, echo_engine.applies.submit(submission(echo_engine, echo_engine.store.serial(), stable))["id"])
    assert back["status"] == "succeeded" and back["results"][0]["status"] == "done"
    assert back["results"][0]["message"] == (f"canary rollout {rollout.id} to 1.0.2 (at step 1/2) aborted: "
                                             "revision 1 (1.0.1) serves 100 %")
    assert echo_engine.rollouts.active("echo") is None
    assert (rollout.status, rollout.reason) == ("superseded", f"aborted: 1.0.1 is desired (apply {back['id']})")
    state = {a.id: a for a in echo_engine.snapshot().agents}["echo"]
    assert (state.revision, state.traffic, state.rollout) == (1, {"1": 100}, None)


def test_each_change_gets_its_outcome_when_its_own_rollout_ends(echo_engine: Engine) -> None:
    """A paused canary of one agent does not hold back the outcome of another agent's rollout in the same apply."""
    echo_engine.deploy(agents.spec("other", 1), agents.module(1))
    pausing = {"strategy": "canary", "steps": [50, 100], "interval": 0.3, "analysis": {"min_requests": 5}}
    passing = {**pausing, "analysis": {"min_requests": 5, "on_no_data": "pass"}}
    body = submission(echo_engine, echo_engine.store.serial(),
                      {**change("echo", 2, "update"), "strategy": "canary", "spec": agents.spec("echo", 2, pausing)},
                      {**change("other", 2, "update"), "strategy": "canary", "spec": agents.spec("other", 2, passing)})
    apply_id = echo_engine.applies.submit(body)["id"]
    deadline = time.monotonic() + 20
    while True:
        view = asyncio.run(echo_engine.applies.follow(apply_id, wait=0.5))
        statuses = {r["id"]: r["status"] for r in view["results"]}
        if statuses == {"echo": "paused", "other": "done"}:
            break
        assert time.monotonic() < deadline, view
    assert view["status"] == "progressing"
    echo_engine.rollouts.promote("echo", Source(actor="test"))
    assert final(echo_engine, apply_id)["status"] == "succeeded"


@pytest.mark.parametrize("strategy", ["immediate", "canary"])
def test_an_applied_spec_is_parsed_once_at_submission(
    echo_engine: Engine, monkeypatch: pytest.MonkeyPatch, strategy: str,
) -> None:
    """The submission parses each spec into a ``Prepared`` revision; the rollout controller and the
    operations below it use that one parse (before: two or three parses per deploy)."""
    from caxton.engine import intake

    parsed: list[str] = []
    real = intake.parse_agent

    def counted(data: dict[str, Any]) -> Any:
        parsed.append(str(data.get("name")))
        return real(data)

    monkeypatch.setattr(intake, "parse_agent", counted)
    update = {**change("echo", 2, "update"), "strategy": strategy,
              "spec": agents.spec("echo", 2, {"strategy": "canary", "steps": [100], "interval": 0.1})}
    create = change("other", 1, "create")
    echo_engine.applies.submit(submission(echo_engine, echo_engine.store.serial(), update, create))
    deadline = time.monotonic() + 20
    while not _changed(echo_engine, strategy):
        assert time.monotonic() < deadline, echo_engine.applies.recent(1)
        time.sleep(0.01)
    assert sorted(parsed) == ["echo", "other"]


def _changed(engine: Engine, strategy: str) -> bool:
    """Both changes made: ``other`` serves, and ``echo`` serves revision 2 (or its canary to 2 has started)."""
    revisions = {a.id: a.revision for a in engine.snapshot().agents}
    rollout = engine.rollouts.active("echo")
    echo_done = revisions.get("echo") == 2 or (rollout is not None and rollout.candidate_revision == 2)
    return revisions.get("other") == 1 and (echo_done if strategy == "canary" else revisions.get("echo") == 2)
