"""A mistyped agent name: the engine's "no agent named ..." error suggests the closest agents."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from caxton.cli import main
from tests.conftest import CliResult
from tests.support.engine import EngineProcess, running_engine
from tests.support.paths import EXAMPLES

Run = Callable[..., CliResult]


@pytest.fixture(scope="module")
def quickstart_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """An engine running the quickstart's agents (data-processor, scorer, summarizer)."""
    root = tmp_path_factory.mktemp("names")
    shutil.copytree(EXAMPLES, root / "project")
    with running_engine(root) as process:
        assert main.main(["apply", str(root / "project" / "agents"), "--auto-approve", "--engine", process.url]) == 0
        yield process


@pytest.mark.parametrize("args", [
    ["agents", "status", "data-procesor"],
    ["agents", "logs", "data-procesor"],
    ["agents", "suspend", "data-procesor"],
    ["agents", "send", "data-procesor", "hello"],
    ["rollout", "status", "data-procesor"],
    ["history", "DataProcesor"],
])
def test_a_mistyped_agent_name_suggests_the_closest(run_cli: Run, quickstart_engine: EngineProcess,
                                                    args: list[str]) -> None:
    result = run_cli(*args, "--engine", quickstart_engine.url)
    assert result.code == main.EXIT_ERROR
    assert result.err.splitlines() == [
        f"error: no agent named {args[2] if args[0] != 'history' else args[1]!r} in the engine",
        "  hint: did you mean data-processor? (list agents with `caxton agents list`)",
    ]


def test_a_name_close_to_nothing_only_points_at_the_list(run_cli: Run, quickstart_engine: EngineProcess) -> None:
    result = run_cli("agents", "status", "zebra", "--engine", quickstart_engine.url)
    assert result.code == main.EXIT_ERROR
    assert result.err.splitlines()[1] == "  hint: list agents with `caxton agents list`"
