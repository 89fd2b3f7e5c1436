"""A committed tree with a symlink loop and TOML nested 50,000 deep is an invalid revision like any
other: reported with its per-file diagnostics, held (not retried) until a new commit, the engine
left untouched; the next good commit is applied."""

from __future__ import annotations

import os
from pathlib import Path

from caxton.reconcile.passes import Target
from tests.reconcile.conftest import revisions, running_loop, wait_for
from tests.reconcile.test_watch import git_source, status
from tests.support.engine import EngineProcess
from tests.support.git import DesiredRepo

DEEP = 50_000


def test_a_hostile_commit_is_held_as_invalid_and_a_fix_applies(
    engine_proc: EngineProcess, desired_repo: DesiredRepo, tmp_path: Path,
) -> None:
    with running_loop(git_source(desired_repo, tmp_path), [Target(engine_proc.url)]):
        wait_for(lambda: len(revisions(engine_proc)) == 4, what="the initial commit applied")
        before = revisions(engine_proc)

        desired_repo.write("agents/deep.toml", 'name = "deep"\nversion = "1.0.0"\nsystem_prompt = "x"\n'
                           "[parameters]\na = " + "[" * DEEP + "]" * DEEP + "\n")
        os.symlink("loop-b.md", desired_repo.agents / "loop-a.md")
        os.symlink("loop-a.md", desired_repo.agents / "loop-b.md")
        hostile = desired_repo.commit("hostile files")
        shown = wait_for(lambda: (s := status(engine_proc)).get("last_outcome") == "invalid"
                         and s.get("last_seen_commit") == hostile and s, what="the hostile commit reported invalid")
        assert isinstance(shown, dict)
        assert shown["held"] is True, "held until a new revision, not retried"
        found = {(d["file"], d["code"]) for d in shown["diagnostics"]}
        assert found == {("agents/deep.toml", "CX116"), ("agents/loop-a.md", "CX109"), ("agents/loop-b.md", "CX109")}
        assert revisions(engine_proc) == before, "the engine is left untouched"

        for name in ("deep.toml", "loop-a.md", "loop-b.md"):
            (desired_repo.agents / name).unlink()
        desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "0.4.0"')
        fixed = desired_repo.commit("remove the hostile files")
        wait_for(lambda: revisions(engine_proc)["summarizer"][2] == "0.4.0", what="the fix applied")
        wait_for(lambda: status(engine_proc).get("last_applied_commit") == fixed, what="the fix recorded")
