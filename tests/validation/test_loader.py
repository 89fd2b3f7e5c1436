"""The desired-state loader: directories, file lists, git revisions, the root boundary, digests."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from caxton.desired import loader
from caxton.errors import GitError, InvalidInput
from caxton.spec.agent import WasmAgent
from caxton.validation import modules, pipeline
from tests.support.git import commit, init_repo
from tests.support.paths import EXAMPLES
from tests.validation.conftest import GOOD_WAT, VALID_MD, wasm, wasm_agent, write_repo

SEEDS_LIFECYCLE = Path("/work/shared/seeds/agent-lifecycle-management.md")

Repo = Callable[[dict[str, str | bytes]], Path]


def codes(state: loader.DesiredState) -> set[str]:
    return {d.code for d in state.diagnostics}


def test_quickstart_is_valid_with_four_agents() -> None:
    state = loader.load(EXAMPLES)
    assert not state.has_errors(strict=True), state.diagnostics
    assert [a.id for a in state.agents] == ["data-processor", "scorer", "summarizer", "word-count"]
    word_count = state.by_id()["word-count"]  # the WASM tool example: its pin matches the built module
    assert word_count.is_tool and word_count.module_sha256 == word_count.spec.sha256
    scorer = state.by_id()["scorer"]
    assert isinstance(scorer.spec, WasmAgent)
    assert scorer.module_sha256 == scorer.spec.sha256
    assert scorer.module_bytes is not None and scorer.module_bytes.startswith(b"\0asm")
    assert state.by_id()["summarizer"].spec.documentation.startswith("# Summarizer")


def test_repo_default_agents_are_valid() -> None:
    state = loader.load(EXAMPLES.parents[1] / "agents")
    assert not state.has_errors(strict=True), state.diagnostics
    assert {type(a.spec).__name__ for a in state.agents} == {"ConfigAgent", "WasmAgent"}


def _seed_data_processor() -> str:
    text = SEEDS_LIFECYCLE.read_text("utf-8")
    start = text.index("cat > agents/data-processor.md << 'EOF'\n") + len("cat > agents/data-processor.md << 'EOF'\n")
    return text[start:text.index("\nEOF\n", start) + 1]


@pytest.mark.skipif(not SEEDS_LIFECYCLE.exists(), reason="seed documents not present on this machine")
def test_seeds_data_processor_validates_as_written_with_deprecation_warnings(repo: Repo) -> None:
    root = repo({"agents/data-processor.md": _seed_data_processor()})
    state = loader.load(root)
    assert not state.has_errors()
    assert state.has_errors(strict=True)
    # two deprecated spellings, and http_client without security_policy.allowed_hosts (issue 15)
    assert sorted(d.code for d in state.diagnostics) == ["CX210", "CX210", "CX310"]
    agent = state.by_id()["data-processor"]
    assert agent.spec.memory.scope == "workspace"
    assert agent.spec.resource_limits.max_conversations == 100  # type: ignore[union-attr]


def test_digest_is_stable_and_tracks_content(repo: Repo) -> None:
    root = repo({"agents/a.md": VALID_MD})
    first, second = loader.load(root), loader.load(root)
    assert first.digest == second.digest and first.digest.startswith("sha256:")
    (root / "agents" / "a.md").write_text(VALID_MD.replace("You help.", "You help a lot."), "utf-8")
    assert loader.load(root).digest != first.digest


def test_module_change_changes_the_agent_digest(repo: Repo) -> None:
    root = repo({"agents/a.md": wasm_agent(), "wasm/m.wasm": wasm(GOOD_WAT)})
    before = loader.load(root).by_id()["wasm-one"].digest
    (root / "wasm" / "m.wasm").write_bytes(wasm(GOOD_WAT.replace("1024", "2048")))
    assert loader.load(root).by_id()["wasm-one"].digest != before


def test_non_agent_files_are_ignored_and_subdirectories_scanned(repo: Repo) -> None:
    root = repo({
        "agents/README.md": "# not an agent\n",
        "agents/notes.txt": "hello",
        "agents/module.wasm": b"\0asm",
        "agents/.hidden.md": "garbage",
        "agents/.drafts/x.md": "garbage",
        "agents/team/a.md": VALID_MD,
    })
    state = loader.load(root)
    assert not state.diagnostics
    assert [a.file for a in state.agents] == ["agents/team/a.md"]


def test_a_directory_without_caxton_yaml_is_the_agents_directory(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(VALID_MD, "utf-8")
    state = loader.load(tmp_path)
    assert [a.file for a in state.agents] == ["a.md"]
    assert state.root == str(tmp_path)


def test_agents_dir_from_caxton_yaml(tmp_path: Path) -> None:
    write_repo(tmp_path, {"caxton.yaml": "agents_dir: desired\n", "desired/a.md": VALID_MD})
    assert [a.file for a in loader.load(tmp_path).agents] == ["desired/a.md"]


def test_empty_agents_directory_is_valid_with_a_note(repo: Repo) -> None:
    root = repo({"agents/.keep": ""})
    state = loader.load(root)
    assert not state.has_errors(strict=True)
    assert codes(state) == {"CX107"}


def test_missing_path_is_an_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        loader.load(tmp_path / "nope")


def test_module_dotdot_inside_the_root_is_fine(repo: Repo) -> None:
    root = repo({"agents/team/a.md": wasm_agent("../../wasm/m.wasm"), "wasm/m.wasm": wasm(GOOD_WAT)})
    state = loader.load(root)
    assert not state.has_errors(), state.diagnostics


def test_module_symlink_escaping_the_root_is_refused(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside.wasm"
    outside.write_bytes(wasm(GOOD_WAT))
    root = repo({"agents/a.md": wasm_agent()})
    (root / "wasm").mkdir()
    os.symlink(outside, root / "wasm" / "m.wasm")
    assert "CX402" in codes(loader.load(root))


def test_agent_file_symlink_escaping_the_root_is_refused(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text(VALID_MD, "utf-8")
    root = repo({"agents/.keep": ""})
    os.symlink(outside, root / "agents" / "a.md")
    state = loader.load(root)
    assert "CX402" in codes(state) and not state.agents


def test_agents_dir_escaping_the_root_is_refused(tmp_path: Path) -> None:
    write_repo(tmp_path / "r", {"caxton.yaml": "agents_dir: ../elsewhere\n"})
    assert "CX402" in codes(loader.load(tmp_path / "r"))


def test_load_files_validates_given_files_and_skips_readme(repo: Repo) -> None:
    root = repo({"agents/a.md": VALID_MD, "agents/b.md": VALID_MD.replace("alpha", "beta"),
                 "agents/README.md": "# hi"})
    state = loader.load_files([root / "agents" / "a.md", root / "agents" / "README.md"])
    assert [a.id for a in state.agents] == ["alpha"]
    assert not state.diagnostics


def test_load_files_with_a_wasm_brings_in_the_agents_using_it(repo: Repo) -> None:
    root = repo({"agents/w.md": wasm_agent(extra="sha256: " + "ab" * 32 + "\n"), "agents/c.md": VALID_MD,
                 "wasm/m.wasm": wasm(GOOD_WAT)})
    state = loader.load_files([root / "wasm" / "m.wasm"])
    assert [a.id for a in state.agents] == ["wasm-one"]
    assert codes(state) == {"CX405"}


def test_load_files_flags_unsupported_files(repo: Repo) -> None:
    root = repo({"agents/notes.txt": "hi"})
    assert codes(loader.load_files([root / "agents" / "notes.txt"])) == {"CX106"}


def test_load_files_across_two_roots_keeps_paths_distinct(tmp_path: Path) -> None:
    write_repo(tmp_path / "one", {"agents/a.md": VALID_MD})
    write_repo(tmp_path / "two", {"agents/a.md": "---\n"})
    state = loader.load_files([tmp_path / "one" / "agents" / "a.md", tmp_path / "two" / "agents" / "a.md"])
    assert state.root == str(tmp_path)
    assert [a.file for a in state.agents] == ["one/agents/a.md"]
    assert [d.file for d in state.diagnostics] == ["two/agents/a.md"]


def test_load_at_a_git_revision_does_not_touch_the_work_tree(tmp_path: Path) -> None:
    write_repo(tmp_path, {"agents/a.md": VALID_MD})
    repo = init_repo(tmp_path)
    repo.index.add(["caxton.yaml", "agents/a.md"])
    first = repo.index.commit("v1")
    (tmp_path / "agents" / "a.md").write_text(VALID_MD.replace('"1.0.0"', '"2.0.0"'), "utf-8")
    commit(repo, "v2", ["agents/a.md"])
    (tmp_path / "agents" / "a.md").write_text("---\nbroken: [\n---\n", "utf-8")  # uncommitted edit

    old = loader.load(tmp_path, ref="HEAD~1")
    head = loader.load(tmp_path / "agents", ref="HEAD")
    assert old.by_id()["alpha"].spec.version == "1.0.0" and old.git_commit == first.hexsha
    assert head.by_id()["alpha"].spec.version == "2.0.0" and not head.diagnostics
    assert head.root == str(tmp_path.resolve())
    assert "broken" in (tmp_path / "agents" / "a.md").read_text("utf-8")
    assert loader.load(tmp_path).has_errors()


def test_git_revision_reads_modules_and_refuses_stored_symlink_escapes(tmp_path: Path) -> None:
    write_repo(tmp_path, {"agents/a.md": wasm_agent(), "agents/b.md": wasm_agent("../wasm/link.wasm").replace(
        "wasm-one", "wasm-two"), "wasm/m.wasm": wasm(GOOD_WAT)})
    os.symlink("../../outside.wasm", tmp_path / "wasm" / "link.wasm")
    commit(init_repo(tmp_path), "modules", ["caxton.yaml", "agents/a.md", "agents/b.md", "wasm/m.wasm", "wasm/link.wasm"])
    state = loader.load(tmp_path, ref="HEAD")
    assert state.by_id()["wasm-one"].module_sha256 is not None
    assert [(d.file, d.code) for d in state.diagnostics if d.severity.value == "error"] == [("agents/b.md", "CX402")]


def test_bad_git_revision_and_missing_path_raise(tmp_path: Path) -> None:
    write_repo(tmp_path, {"agents/a.md": VALID_MD})
    commit(init_repo(tmp_path), "v1", ["caxton.yaml", "agents/a.md"])
    with pytest.raises(GitError):
        loader.load(tmp_path, ref="no-such-branch")
    (tmp_path / "later").mkdir()
    with pytest.raises(InvalidInput):
        loader.load(tmp_path / "later", ref="HEAD")


def test_ref_outside_a_git_repository_raises(tmp_path: Path) -> None:
    with pytest.raises(GitError):
        loader.load(tmp_path, ref="HEAD")


def test_module_paths_never_leave_the_root() -> None:
    assert modules.resolve("agents/a.md", "../wasm/x.wasm") == "wasm/x.wasm"
    assert modules.resolve("agents/a.md", "../../x.wasm") is None
    assert modules.resolve("agents/a.md", "/x.wasm") is None
    assert modules.resolve("agents/a.md", "C:\\x.wasm") is None
    assert modules.resolve("agents/a.md", "..\\..\\x.wasm") is None


def test_fuzzed_bytes_never_crash_the_pipeline() -> None:
    rng = random.Random(20261121)
    reader = modules.mapping_reader({})
    seeds = [VALID_MD.encode(), wasm_agent().encode(), b'name = "a"\nversion = "1.0.0"\n']
    for index in range(300):
        if index % 2:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        else:
            base = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 6)):
                base[rng.randrange(len(base))] = rng.choice(b"-:{}[]|>'\"\n\t #*&!%@`\x00\xff")
            data = bytes(base)
        for name in ("agents/f.md", "agents/f.toml"):
            result = pipeline.validate_agents([pipeline.AgentFile(name, data)], reader)
            assert result.agents or result.diagnostics


def test_http_client_without_allowed_hosts_is_a_warning_and_with_them_is_clean(repo: Repo) -> None:
    def agent(name: str, extra: str = "") -> str:
        return (f'---\nname: {name}\nversion: "1.0.0"\nsystem_prompt: "You fetch."\n'
                f"tools: [calculator, http_client]\n{extra}---\n")

    state = loader.load(repo({"agents/a.md": agent("open"),
                              "agents/b.md": agent("fenced", "security_policy:\n  allowed_hosts: [api.example]\n")}))
    found = [(d.file, d.code, d.severity.value, d.line) for d in state.diagnostics]
    assert found == [("agents/a.md", "CX310", "warning", 5)]
    assert "allowed_hosts" in (state.diagnostics[0].hint or "") and not state.has_errors()
