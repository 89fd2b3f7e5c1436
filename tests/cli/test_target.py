"""``--target AGENT`` (repeatable) on plan and apply: only those agents are planned and applied; an unknown
name is refused with a "did you mean" among the desired and live agents."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from caxton.client import status as status_api
from caxton.errors import InvalidInput
from caxton.planning import targeting
from caxton.spec.plan import AgentChange, Plan, PlanSource
from tests.conftest import CliResult
from tests.support.engine import EngineProcess
from tests.support.paths import EXAMPLES


def _plan(*ids: str) -> Plan:
    changes = [AgentChange(id=i, name=i, kind="config", action="create", reason="not on the engine",
                           strategy="immediate") for i in ids]
    return Plan(plan_id="p", created_at="2026-11-26T00:00:00Z", engine_url="http://127.0.0.1:8080", engine_serial=1,
                desired_digest="sha256:0", source=PlanSource(path="/repo/agents"), changes=changes)


def test_select_keeps_the_targeted_agents_by_identity() -> None:
    plan = _plan("data-processor", "scorer", "summarizer")
    narrowed = targeting.select(plan, ["DataProcessor", "summarizer", "data_processor"])
    assert [c.id for c in narrowed.changes] == ["data-processor", "summarizer"]
    assert narrowed.targets == ["data-processor", "summarizer"]
    assert targeting.select(plan, []) is plan and plan.targets is None


def test_select_refuses_an_unknown_agent_with_did_you_mean() -> None:
    with pytest.raises(InvalidInput) as refused:
        targeting.select(_plan("data-processor", "summarizer"), ["sumarizer"])
    assert refused.value.message == "--target sumarizer: no agent 'sumarizer' in the desired state or on the engine"
    assert refused.value.hint == "did you mean 'summarizer'?"
    with pytest.raises(InvalidInput) as far:
        targeting.select(_plan("data-processor", "summarizer"), ["zzz"])
    assert far.value.hint == "--target takes one of: data-processor, summarizer"
    with pytest.raises(InvalidInput) as empty:
        targeting.select(_plan(), ["a"])
    assert empty.value.hint == "there are no agents to target here"


# --- against a real engine -----------------------------------------------------------------------
@pytest.fixture
def cli(run_cli: Callable[..., CliResult], engine_proc_no_memory: EngineProcess, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLES, root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("CAXTON_ENGINE_URL", engine_proc_no_memory.url)
    return run_cli


def _scrub(text: str, engine: EngineProcess) -> str:
    text = text.replace(str(Path.cwd()), "<repo>").replace(engine.url, "<engine>")
    return re.sub(r"sha256:[0-9a-f]{12}", "sha256:<digest>", text)


def _live(engine: EngineProcess) -> dict[str, str]:
    with engine.client() as client:
        return {a.id: a.version for a in status_api.state(client).agents}


def test_plan_and_apply_only_the_targeted_agents(cli: Callable[..., CliResult], engine_proc_no_memory: EngineProcess,
                                                 snapshot: SnapshotAssertion) -> None:
    planned = cli("plan", "--target", "summarizer", "--target", "Scorer", "--detailed-exitcode")
    assert planned.code == 2, planned.err
    assert _scrub(planned.out, engine_proc_no_memory) == snapshot(name="plan")

    applied = cli("apply", "--target", "summarizer", "--auto-approve")
    assert applied.code == 0, applied.err
    assert _live(engine_proc_no_memory) == {"summarizer": "0.3.1"}
    assert "data-processor" not in applied.out and "Apply succeeded: 1 create." in applied.out

    rest = cli("plan", "--output", "json")
    plan = json.loads(rest.out)
    assert plan["targets"] is None
    assert {c["id"]: c["action"] for c in plan["changes"]} == {
        "data-processor": "create", "scorer": "create", "summarizer": "no-op", "word-count": "create"}

    in_sync = cli("plan", "--target", "summarizer", "--detailed-exitcode")
    assert in_sync.code == 0
    assert in_sync.out.splitlines()[-1] == "No changes. The targeted agents match the desired state."


def test_a_target_only_on_the_engine_is_known_and_suggested(cli: Callable[..., CliResult],
                                                           engine_proc_no_memory: EngineProcess) -> None:
    assert cli("apply", "--target", "summarizer", "--auto-approve").code == 0
    Path("agents/summarizer.toml").unlink()  # summarizer is now only on the engine

    typo = cli("plan", "--target", "summariser")
    assert typo.code == 1 and typo.out == ""
    assert typo.err == ("error: --target summariser: no agent 'summariser' in the desired state or on the engine\n"
                        "  hint: did you mean 'summarizer'?\n")
    deleting = cli("plan", "--target", "summarizer", "--output", "json")
    plan = json.loads(deleting.out)
    assert plan["targets"] == ["summarizer"]
    assert [(c["id"], c["action"]) for c in plan["changes"]] == [("summarizer", "delete")]


def test_a_saved_plan_is_applied_as_saved(cli: Callable[..., CliResult], engine_proc_no_memory: EngineProcess) -> None:
    assert cli("plan", "--target", "scorer", "--out", "scorer.plan.json").code == 0
    refused = cli("apply", "scorer.plan.json", "--target", "summarizer")
    assert refused.code == 1
    assert refused.err.startswith("error: --target narrows a plan while it is made")
    applied = cli("apply", "scorer.plan.json")
    assert applied.code == 0, applied.err
    assert _live(engine_proc_no_memory) == {"scorer": "1.0.0"}


def test_help_documents_target(run_cli: Callable[..., CliResult]) -> None:
    for command in ("plan", "apply"):
        flat = " ".join(run_cli(command, "--help").out.split())
        assert "--target AGENT" in flat and "repeatable" in flat
