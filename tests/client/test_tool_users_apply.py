"""A changed WASM tool through plan and apply: the plan updates the agents that list it, apply starts a new
revision of each (its spec is unchanged), and the next plan has no changes."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from caxton.client import agents, plan_apply
from caxton.client.transport import EngineClient
from tests.support.paths import EXAMPLES

EDITOR = '---\nname: editor\nversion: "1.0.0"\ntools: [word-count, calculator]\nsystem_prompt: You edit.\n---\n'
#: A custom section ("note"): the module changes, its code does not.
NOTE = b"\x00\x09\x04note1234"


def test_a_changed_tool_rolls_out_to_the_agents_that_list_it(client: EngineClient, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "quickstart")
    path = tmp_path / "quickstart" / "agents"
    (path / "editor.md").write_text(EDITOR)
    first = plan_apply.make(client, str(path))
    assert plan_apply.run(client, first.plan, first.desired, on_line=lambda _: None).status == "succeeded"

    module = tmp_path / "quickstart" / "wasm" / "word-count.wasm"
    old = hashlib.sha256(module.read_bytes()).hexdigest()
    module.write_bytes(module.read_bytes() + NOTE)
    new = hashlib.sha256(module.read_bytes()).hexdigest()
    tool = path / "word-count.md"
    tool.write_text(tool.read_text().replace(old, new).replace('version: "1.0.0"', 'version: "1.0.1"'))
    planned = plan_apply.make(client, str(path))
    changed = {c.id: c for c in planned.plan.actionable()}
    assert set(changed) == {"word-count", "editor"}
    assert changed["editor"].reason == "tool word-count changed" and changed["editor"].tools_changed == ["word-count"]
    outcome = plan_apply.run(client, planned.plan, planned.desired, on_line=lambda _: None)
    assert outcome.status == "succeeded" and outcome.counts() == {"update": 2}
    assert agents.get(client, "editor").revision == 2 and agents.get(client, "word-count").revision == 2
    reply = agents.send(client, "editor", '/tool word-count {"text": "still counting words"}').reply
    assert reply["tool_calls"][0]["result"] == {"words": 3}
    assert not plan_apply.make(client, str(path)).plan.has_changes
