"""The plan/apply use case (``caxton.client.plan_apply``) and the resource modules, against a real engine.

One engine per module (tests/client/conftest.py); the tests that change it run in file order:
the quickstart is applied once, then read back through each resource module.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from caxton.client import agents, applies, lock, plan_apply, status
from caxton.client.transport import EngineClient, actor
from caxton.errors import InvalidInput, LockHeld, StalePlan
from caxton.spec import api
from tests.support.paths import EXAMPLES

QUICKSTART = {"data-processor", "scorer", "summarizer", "word-count"}


def _quickstart(root: Path) -> Path:
    shutil.copytree(EXAMPLES, root / "quickstart")
    return root / "quickstart" / "agents"


def test_make_run_then_no_changes(client: EngineClient, tmp_path: Path) -> None:
    path = _quickstart(tmp_path)
    planned = plan_apply.make(client, str(path))
    assert {c.id for c in planned.plan.changes} == QUICKSTART
    assert planned.plan.source.path == str(path.resolve()) and planned.plan.engine_url == client.base_url
    lines: list[api.ApplyLine] = []
    submitted: list[str] = []
    outcome = plan_apply.run(client, planned.plan, planned.desired, on_line=lines.append, timeout=120.0,
                             on_submitted=submitted.append)
    assert outcome.status == "succeeded" and outcome.counts() == {"create": 4}
    assert submitted == [outcome.apply_id] and lines and lines == sorted(lines, key=lambda line: line.seq)
    assert {a.id for a in status.state(client).agents} == QUICKSTART
    again = plan_apply.make(client, str(path))
    assert not again.plan.has_changes
    assert plan_apply.run(client, again.plan, again.desired, on_line=lines.append).status == "nothing"
    assert not lock.status(client).held  # released once the engine accepted the changes


def test_the_resources_read_back_what_was_applied(client: EngineClient) -> None:
    assert status.health(client).status == "healthy" and status.ready(client)
    assert {a.id for a in agents.summaries(client)} == QUICKSTART
    assert agents.get(client, "scorer").revision == 1
    assert agents.send(client, "scorer", {"hello": "world"}).reply["agent"] == "scorer"
    assert [r.revision for r in agents.history(client, "summarizer").revisions] == [1]
    newest = applies.recent(client, limit=1)[0]
    assert newest.status == "succeeded" and applies.get(client, newest.id).id == newest.id
    assert status.events(client, agent="scorer", limit=5).events
    assert "caxton_state_serial" in status.metrics(client)


def test_a_saved_plan_is_refused_once_its_files_change(client: EngineClient, tmp_path: Path) -> None:
    path = _quickstart(tmp_path)
    (path / "summarizer.toml").write_text((path / "summarizer.toml").read_text().replace('"0.3.1"', '"0.4.0"'))
    planned = plan_apply.make(client, str(path))
    assert [c.id for c in planned.plan.actionable()] == ["summarizer"]
    assert plan_apply.reload_for(planned.plan).digest == planned.desired.digest
    (path / "summarizer.toml").write_text((path / "summarizer.toml").read_text().replace('"0.4.0"', '"0.5.0"'))
    with pytest.raises(StalePlan, match="the desired state changed since it was made"):
        plan_apply.reload_for(planned.plan)


def test_an_apply_waits_for_no_one_else_s_lock(client: EngineClient, tmp_path: Path) -> None:
    path = _quickstart(tmp_path)
    (path / "summarizer.toml").write_text((path / "summarizer.toml").read_text().replace('"0.3.1"', '"0.6.0"'))
    planned = plan_apply.make(client, str(path))
    grant = lock.acquire(client, "someone else's apply", ttl=30.0)
    try:
        assert lock.status(client).held
        with pytest.raises(LockHeld) as held:  # no apply is changing anything: no reason to wait
            plan_apply.run(client, planned.plan, planned.desired, on_line=lambda _: None)
        assert isinstance(held.value.details, dict) and held.value.details.get("holder") == actor()
    finally:
        lock.release(client, grant.token)
    assert not lock.status(client).held
    assert agents.get(client, "summarizer").version == "0.3.1"  # nothing was submitted


def test_an_agent_name_is_one_path_segment(client: EngineClient) -> None:
    with pytest.raises(InvalidInput, match="is not an agent name"):
        agents.get(client, "a/b")
