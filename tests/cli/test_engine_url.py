"""Engine URLs: a trailing /api/v1 or slash is dropped, a loopback address without a scheme gets http://,
anything else unusable is refused with what is wrong (for --engine, CAXTON_ENGINE_URL and caxton.yaml)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from caxton.client import urls
from caxton.errors import InvalidInput
from tests.conftest import CliResult
from tests.support.engine import EngineProcess
from tests.support.paths import EXAMPLES


@pytest.mark.parametrize(("given", "base"), [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("http://127.0.0.1:8080/api/v1", "http://127.0.0.1:8080"),
    ("  http://127.0.0.1:8080/api/v1/ ", "http://127.0.0.1:8080"),
    ("127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("localhost:9000/api/v1", "http://localhost:9000"),
    ("[::1]:8080", "http://[::1]:8080"),
    ("HTTPS://engine.example.com/caxton/api/v1", "https://engine.example.com/caxton"),
])
def test_engine_urls_are_normalised(given: str, base: str) -> None:
    assert urls.normalise(given) == base
    assert urls.normalise(base) == base


@pytest.mark.parametrize(("given", "message", "hint"), [
    ("", "the engine URL is empty", "http://127.0.0.1:8080"),
    ("engine.example.com:8080", "has no scheme", "write http://engine.example.com:8080 or https://"),
    ("ftp://127.0.0.1:8080", "the scheme is 'ftp'", "http://127.0.0.1:8080"),
    ("not a url", "contains spaces", "http://127.0.0.1:8080"),
    ("http://", "there is no host", "http://127.0.0.1:8080"),
    ("http://127.0.0.1:99999", "the port is not a number", "http://127.0.0.1:8080"),
    ("http://127.0.0.1:8080/?x=1", "query or fragment", "http://127.0.0.1:8080"),
    ("http://h_st!:8080", "is not a host name or address", "http://127.0.0.1:8080"),
    ("http://me:secret@127.0.0.1:8080", "carries credentials", "--token"),
])
def test_unusable_engine_urls_are_refused(given: str, message: str, hint: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        urls.normalise(given)
    assert message in refused.value.message and hint in (refused.value.hint or "")
    assert "secret" not in refused.value.message


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLES, root)
    monkeypatch.chdir(root)
    monkeypatch.delenv("CAXTON_ENGINE_URL", raising=False)
    return root


def test_the_url_the_banner_prints_works_as_engine(run_cli: Callable[..., CliResult],
                                                   module_engine_proc: EngineProcess) -> None:
    result = run_cli("health", "--engine", f"{module_engine_proc.url}/api/v1")
    assert result.code == 0, result.err
    assert f"{module_engine_proc.url}: healthy" in result.out  # the seeds' health vocabulary (issue 13)


def test_a_loopback_address_without_scheme_works_from_the_environment(
    run_cli: Callable[..., CliResult], module_engine_proc: EngineProcess, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAXTON_ENGINE_URL", f"127.0.0.1:{module_engine_proc.port}/")
    result = run_cli("agents", "list", "--output", "json")
    assert result.code == 0, result.err
    assert isinstance(json.loads(result.out), list)


def test_plan_records_the_normalised_url_and_apply_accepts_the_banner_form(
    run_cli: Callable[..., CliResult], module_engine_proc: EngineProcess, project: Path,
) -> None:
    saved = project / "x.plan.json"
    planned = run_cli("plan", "--engine", f"{module_engine_proc.url}/api/v1/", "--out", str(saved))
    assert planned.code == 0, planned.err
    assert json.loads(saved.read_text())["engine_url"] == module_engine_proc.url
    applied = run_cli("apply", str(saved), "--engine", f"127.0.0.1:{module_engine_proc.port}")
    assert applied.code == 0, applied.err
    assert "Apply succeeded" in applied.out


@pytest.mark.parametrize(("given", "expected"), [
    ("garbage url", "error: engine URL 'garbage url' is not usable: it contains spaces"),
    ("engine.example.com:8080", "error: engine URL 'engine.example.com:8080' has no scheme"),
    ("gopher://127.0.0.1:8080", "error: engine URL 'gopher://127.0.0.1:8080' is not usable: the scheme is 'gopher'"),
])
def test_commands_refuse_an_unusable_engine_url_in_one_clear_error(
    run_cli: Callable[..., CliResult], project: Path, given: str, expected: str,
) -> None:
    for command in (["plan", "--engine", given], ["health", "--engine", given], ["reconcile", "--engine", given],
                    ["apply", "agents", "--auto-approve", "--engine", given]):
        result = run_cli(*command)
        assert result.code == 1, command
        assert result.err.splitlines()[0].startswith(expected), command
        assert "hint:" in result.err and "internal error" not in result.err
        assert result.out == "", command


def test_a_caxton_yaml_engine_with_api_v1_is_reconciled(
    run_cli: Callable[..., CliResult], module_engine_proc: EngineProcess, project: Path,
) -> None:
    (project / "caxton.yaml").write_text(f"environments:\n  here:\n    engines: [\"{module_engine_proc.url}/api/v1\"]\n")
    result = run_cli("reconcile", "--env", "here")
    assert result.code == 0, result.err
    assert "in_sync" in result.out or "applied" in result.out


def test_a_caxton_yaml_engine_without_scheme_fails_validation(run_cli: Callable[..., CliResult],
                                                              project: Path) -> None:
    (project / "caxton.yaml").write_text("environments:\n  here:\n    engines: [\"127.0.0.1:8080\"]\n")
    result = run_cli("validate", ".")
    assert result.code == 1
    assert "engine URL '127.0.0.1:8080' must start with http:// or https://" in result.out + result.err
