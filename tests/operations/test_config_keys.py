"""Every key of caxton.yaml has an effect a test proves, or is refused: nothing is accepted and ignored.

``EFFECTS`` maps each leaf key of ``ProjectConfig`` to the test that proves its
effect: a node id elsewhere in the suite (checked to exist, and to name the
key), or one of the ``test_effect_*`` tests below, which start an engine with
the key changed and observe the difference. A key added to the schema without
an entry fails ``test_every_key_has_an_effect_test``. Keys Caxton knows but
does not build are refused with advice (``caxton.spec.refused``), tested here
with the seeds' production caxton.yaml.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import BaseModel

from caxton.client import status as status_api
from caxton.engine import config as engine_config
from caxton.engine import logsetup
from caxton.engine.http.app import create_app
from caxton.engine.core import Engine
from caxton.errors import ValidationFailed
from caxton.spec import refused
from caxton.spec.project import LoggingSettings, ProjectConfig
from tests.conftest import CliResult
from tests.engine.helpers import config_spec, wasm_spec, wat_module
from tests.security.auth_tokens import write_tokens
from tests.support.engine import EngineProcess
from tests.support.git import DesiredRepo
from tests.support.paths import REPO_ROOT, free_port

FIXTURES = Path(__file__).parent / "fixtures"
SEEDS = FIXTURES / "seeds-production.yaml"
ADJUSTED = FIXTURES / "production.yaml"
HERE = "tests/operations/test_config_keys.py"

#: key -> the test proving its effect ("file::test"; the key's last part must appear in that test or its module).
EFFECTS: dict[str, str] = {
    "backups.interval": "tests/operations/test_backup_schedule.py::test_a_due_backup_is_taken_verifies_and_retention_prunes_only_after_a_new_one",
    "backups.directory": "tests/operations/test_backup_schedule.py::test_a_serving_engine_backs_up_on_schedule_and_survives_a_broken_directory",
    "backups.retention": "tests/operations/test_backup_schedule.py::test_a_due_backup_is_taken_verifies_and_retention_prunes_only_after_a_new_one",
    "backups.max_age": "tests/operations/test_backup_schedule.py::test_max_age_deletes_old_archives_but_keeps_the_newest",
    "agents_dir": "tests/planning/test_apply_e2e.py::test_plan_without_a_directory_uses_the_projects_agents_dir",
    "environments.*.engines": "tests/reconcile/test_cli.py::test_an_environment_is_a_rolling_wave_stopping_at_the_"
                              "first_failure",
    "environments.*.description": f"{HERE}::test_documentation_keys_are_documented",
    "environments.*.branch": f"{HERE}::test_effect_defaults_and_environment_branch",
    "defaults.engine": f"{HERE}::test_effect_defaults_and_environment_branch",
    "defaults.environment": f"{HERE}::test_effect_defaults_and_environment_branch",
    "server.host": f"{HERE}::test_seeds_config_without_its_refused_keys_is_refused_for_serving_0_0_0_0_open",
    "server.port": "tests/cli/test_up_config.py::test_up_listens_on_caxton_yaml_server_port",
    "server.data_dir": "tests/cli/test_up_config.py::test_flags_then_environment_then_file_then_defaults",
    "server.max_queued_messages_per_agent": "tests/engine/test_bulkheads.py::test_a_saturated_agent_refuses_its_excess_while_others_and_the_control_plane_stay_fast",
    "server.max_queue_wait": "tests/engine/test_bulkheads.py::test_a_queued_message_times_out_with_queue_timeout_and_its_slot_goes_to_the_next",
    "server.max_inflight_messages": "tests/engine/test_bulkheads.py::test_a_saturated_agent_refuses_its_excess_while_others_and_the_control_plane_stay_fast",
    "server.max_wasm_memory": "tests/engine/test_budgets.py::test_a_deploy_past_the_wasm_memory_budget_is_refused_and_changes_nothing",
    "server.max_request_size": "tests/security/test_request_limits.py::test_an_oversized_body_is_refused_with_413_"
                               "declared_or_streamed",
    "server.max_apply_size": f"{HERE}::test_effect_server_limits",
    "server.max_message_size": "tests/engine/test_api.py::test_bodies_over_the_limits_get_413",
    "server.revisions_kept": f"{HERE}::test_effect_server_limits",
    "server.drain_timeout": f"{HERE}::test_effect_server_drain_timeout",
    "server.drain_delay": "tests/engine/test_drain.py::test_sigterm_turns_readyz_503_serves_through_drain_delay_and_answers_the_message_in_flight",
    "server.stream_heartbeat": "tests/engine/test_event_stream.py::test_heartbeats_keep_an_idle_stream_open_until_its_timeout",
    "server.stream_queue": "tests/engine/test_event_stream.py::test_a_client_that_does_not_read_is_dropped_with_an_overflow_frame",
    "server.tls.cert_file": "tests/security/test_tls.py::test_the_engine_serves_https_and_its_banner_says_so",
    "server.tls.key_file": "tests/security/test_tls.py::test_an_engine_with_an_unreadable_certificate_exits_1_"
                           "saying_which",
    "server.tls.client_ca_file": "tests/security/test_tls.py::test_mtls_needs_a_client_certificate_the_client_ca_"
                                 "signed",
    "security.api_token": "tests/security/test_auth_cache.py::test_the_api_token_is_one_admin_named_api_token",
    "security.tokens_file": "tests/security/test_auth_reload.py::test_sighup_reloads_the_tokens_file",
    "security.allowed_hosts": f"{HERE}::test_effect_metrics_enabled_and_allowed_hosts",
    "security.rate_limits.messages_per_second": "tests/security/test_rate_limits.py::test_callers_and_budgets_are_"
                                                "separate",
    "security.rate_limits.messages_burst": "tests/security/test_rate_limits.py::test_callers_and_budgets_are_separate",
    "security.rate_limits.mutations_per_second": "tests/security/test_rate_limits.py::test_callers_and_budgets_are_"
                                                 "separate",
    "security.rate_limits.mutations_burst": "tests/security/test_rate_limits.py::test_callers_and_budgets_are_"
                                            "separate",
    "memory.enabled": "tests/engine/test_memory_wiring.py::test_memory_can_be_disabled",
    "store.url": "tests/engine/test_postgres_store.py::test_an_engine_on_postgres_applies_the_quickstart_answers_and_keeps_its_agents",
    "memory.backend": "tests/memory/test_postgres_engine.py::test_memory_backend_postgres_serves_and_survives_a_"
                      "restart",
    "memory.url": "tests/memory/test_postgres_engine.py::test_memory_backend_postgres_serves_and_survives_a_restart",
    "memory.sqlite_path": f"{HERE}::test_effect_memory_choices_and_path",
    "memory.embedding_model": f"{HERE}::test_effect_memory_choices_and_path",
    "memory.model_path": "tests/engine/test_memory_wiring.py::test_a_broken_model_leaves_memory_unhealthy_and_other_"
                         "agents_serving",
    "memory.tokenizer_path": f"{HERE}::test_effect_memory_choices_and_path",
    "memory.max_entities": "tests/memory/test_service.py::test_global_and_per_agent_entity_limits",
    "memory.max_observation_size": "tests/memory/test_api_cli.py::test_oversized_observation_and_batch_are_413_with_"
                                   "nothing_stored",
    "memory.max_batch_size": "tests/memory/test_api_cli.py::test_oversized_observation_and_batch_are_413_with_"
                             "nothing_stored",
    "llm.max_prompt_size": "tests/engine/test_budgets.py::test_a_prompt_whose_system_and_user_parts_pass_max_prompt_size_fails_with_"
                           "its_reason",
    "llm.max_reply_size": "tests/engine/test_budgets.py::test_a_provider_reply_over_max_reply_size_is_a_502_with_its_reason",
    "llm.openai.base_url": "tests/engine/test_providers.py::test_openai_unreachable_endpoint",
    "llm.openai.api_key_env": "tests/engine/test_providers.py::test_openai_missing_key_names_the_variable",
    "llm.openai.timeout": "tests/engine/test_providers.py::test_openai_timeout_is_a_timeout_failure",
    "llm.openai.retries": "tests/engine/test_providers.py::test_openai_gives_up_after_the_configured_retries",
    "llm.openai.model": "tests/engine/test_providers.py::test_openai_model_comes_from_the_agent_or_the_project_config",
    "logging.level": "tests/security/test_sighup.py::test_sighup_under_message_load_drops_nothing_and_reloads_the_"
                     "log_level",
    "logging.format": f"{HERE}::test_the_adjusted_production_config_starts_and_every_key_works",
    "logging.file": f"{HERE}::test_the_adjusted_production_config_starts_and_every_key_works",
    "logging.max_file_size": f"{HERE}::test_effect_log_file_rotation_and_reopen",
    "logging.backup_count": f"{HERE}::test_effect_log_file_rotation_and_reopen",
    "logging.agent_log_lines": "tests/engine/test_durable_history.py::test_the_engine_applies_the_settings_and_reads_"
                               "history_after_a_restart",
    "logging.agent_log_retention": f"{HERE}::test_effect_history_retention_reaches_the_store",
    "observability.metrics_enabled": f"{HERE}::test_effect_metrics_enabled_and_allowed_hosts",
    "observability.metrics_port": f"{HERE}::test_the_adjusted_production_config_starts_and_every_key_works",
    "observability.metrics_auth": "tests/security/test_auth_tokens.py::test_metrics_auth_none_opens_metrics_only",
    "templates.max_output_size": "tests/security/test_templates_runtime.py::test_run_time_burners_are_stopped_by_a_"
                                 "bound",
    "templates.max_render_time": "tests/security/test_templates_runtime.py::test_run_time_burners_are_stopped_by_a_"
                                 "bound",
    "conversations.max_turns": "tests/engine/test_durable_history.py::test_the_engine_applies_the_settings_and_reads_"
                               "history_after_a_restart",
    "conversations.retention": f"{HERE}::test_effect_history_retention_reaches_the_store",
    "conversations.max_history_size": "tests/engine/test_budgets.py::test_max_history_size_bounds_what_the_engine_keeps_and_prompts",
    "conversations.min_idle": "tests/engine/test_budgets.py::test_a_full_agent_takes_new_conversations_once_one_is_idle_and_the_evicted_"
                              "one_continues",
}
#: Keys whose only job is to document the file for people (no behaviour, by design).
DOCUMENTATION = {"environments.*.description"}


# --- the table -------------------------------------------------------------------------------------------
def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def leaf_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """Every leaf key of ``model`` as a dotted path (``*`` for the names of a mapping of sections)."""
    for name, info in model.model_fields.items():
        annotation = _unwrap(info.annotation)
        value = _unwrap(typing.get_args(annotation)[1]) if typing.get_origin(annotation) is dict else None
        if _is_model(annotation):
            yield from leaf_keys(annotation, (*prefix, name))
        elif _is_model(value):
            yield from leaf_keys(value, (*prefix, name, "*"))
        else:
            yield ".".join((*prefix, name))


def _test_source(node_id: str) -> tuple[str, str] | None:
    """(the test function's source, its module's source), or None when there is no such test."""
    file, _, name = node_id.partition("::")
    path = REPO_ROOT / file
    if not path.is_file():
        return None
    module = path.read_text(encoding="utf-8")
    for node in ast.parse(module).body:
        if isinstance(node, ast.FunctionDef) and node.name == name.split("[")[0]:
            return ast.get_source_segment(module, node) or "", module
    return None


def test_every_key_has_an_effect_test() -> None:
    keys = set(leaf_keys(ProjectConfig))
    missing, stale = sorted(keys - set(EFFECTS)), sorted(set(EFFECTS) - keys)
    assert not missing, f"caxton.yaml keys with no effect test: add them to EFFECTS (or refuse them): {missing}"
    assert not stale, f"EFFECTS names keys the schema no longer has: {stale}"


@pytest.mark.parametrize("key", sorted(EFFECTS))
def test_the_effect_test_exists_and_names_the_key(key: str) -> None:
    found = _test_source(EFFECTS[key])
    assert found is not None, f"{key}: no test {EFFECTS[key]}"
    function, module = found
    word = key.rsplit(".", 1)[-1]
    assert word in function or word in module, f"{key}: {EFFECTS[key]} never mentions {word!r}"


def test_refused_keys_are_not_in_the_schema_and_say_what_to_do(tmp_path: Path) -> None:
    keys = set(leaf_keys(ProjectConfig))
    for path, advice in refused.REFUSED.items():
        dotted = ".".join(path)
        assert not any(key == dotted or key.startswith(dotted + ".") for key in keys), dotted
        assert "not supported" in advice or "instead" in advice, dotted
        with pytest.raises(ValidationFailed) as caught:
            engine_config.load(_write(tmp_path / "caxton.yaml", _nested(path, True)), env={}, cwd=tmp_path)
        assert f"{dotted}: {advice}" in caught.value.message


def test_documentation_keys_are_documented() -> None:
    """The reference in docs/operations.md names every key and every refused one; ``description`` keys are
    for people, and it says so."""
    text = (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    reference = text[text.index("## Configuration reference"):text.index("## Production caxton.yaml")]
    for key in leaf_keys(ProjectConfig):
        shown = key.replace("*", "NAME")
        assert f"`{shown}`" in reference or f"`{shown.rsplit('.', 1)[-1]}`" in reference, key
    for path in refused.REFUSED:
        assert f"`{'.'.join(path)}`" in reference, path
    for key in DOCUMENTATION:
        assert f"`{key.replace('*', 'NAME')}` | none | documentation only" in reference, key


# --- refusals: the seeds' production caxton.yaml ---------------------------------------------------------
def test_the_seeds_production_config_is_refused_key_by_key_in_one_go(
    run_cli: Callable[..., CliResult], tmp_path: Path,
) -> None:
    result = run_cli("server", "start", "--config", str(SEEDS))
    assert result.code == 1
    assert f"error: {SEEDS}: 2 problems:" in result.err
    assert f"{SEEDS}:6: server.agents_dir: not supported: the engine serves what is applied to it" in result.err
    assert f"{SEEDS}:22: observability.tracing_enabled: not supported: Caxton has no tracing" in result.err
    assert "hint: remove or replace each key named" in result.err
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "caxton.yaml").write_bytes(SEEDS.read_bytes())
    validated = run_cli("validate", str(tmp_path / "project"))  # caxton validate says the same, per key
    assert validated.code == 1
    assert "caxton.yaml:22:3: error CX202: observability.tracing_enabled: not supported" in validated.out
    assert "caxton.yaml:6:3: error CX202: server.agents_dir: not supported" in validated.out


def test_seeds_config_without_its_refused_keys_is_refused_for_serving_0_0_0_0_open(
    run_cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CAXTON_API_TOKEN", "CAXTON_TOKENS_FILE", "CAXTON_HOST", "CAXTON_PORT"):
        monkeypatch.delenv(name, raising=False)
    data = yaml.safe_load(SEEDS.read_text())
    del data["server"]["agents_dir"], data["observability"]["tracing_enabled"]
    data["server"].update(port=free_port(), data_dir=str(tmp_path / "data"))
    data["logging"]["file"] = str(tmp_path / "log" / "caxton.log")
    data["observability"]["metrics_port"] = free_port()
    result = run_cli("server", "start", "--config", str(_write(tmp_path / "caxton.yaml", data)))
    assert result.code == 1, result.err
    port = data["server"]["port"]
    assert (f"refusing to serve 0.0.0.0:{port} without a token: set security.tokens_file or CAXTON_API_TOKEN, "
            "or pass --insecure-no-auth") in result.err
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def test_a_typo_is_refused_with_its_path_and_a_did_you_mean(tmp_path: Path) -> None:
    path = _write(tmp_path / "caxton.yaml", {"logging": {"fromat": "json"}, "observability": {"metrics_prot": 1}})
    with pytest.raises(ValidationFailed) as caught:
        engine_config.load(path, env={}, cwd=tmp_path)
    assert f"{path}:2: logging.fromat: unknown key; did you mean 'format'?" in caught.value.message
    assert f"{path}:4: observability.metrics_prot: unknown key; did you mean 'metrics_port'?" in caught.value.message


# --- effects, in-process ---------------------------------------------------------------------------------
def test_effect_metrics_enabled_and_allowed_hosts(tmp_path: Path) -> None:
    """``metrics_enabled: false``: /metrics is 404; ``allowed_hosts``: that Host name is answered."""
    on = _api(tmp_path / "on", {"security": {"allowed_hosts": ["caxton.example"]}})
    off = _api(tmp_path / "off", {"observability": {"metrics_enabled": False}})
    assert on.get("/metrics").status_code == 200 and off.get("/metrics").status_code == 404
    assert on.get("/api/v1/health", headers={"Host": "caxton.example"}).status_code == 200
    assert off.get("/api/v1/health", headers={"Host": "caxton.example"}).status_code == 403


def test_effect_server_limits(tmp_path: Path) -> None:
    """``max_apply_size`` bounds plan submissions (413); ``revisions_kept`` bounds the revisions kept."""
    small = _api(tmp_path / "small", {"server": {"max_apply_size": "2KiB", "revisions_kept": 1}})
    large = _api(tmp_path / "large", {})
    body = {"plan": {"padding": "x" * 4096}}
    assert small.post("/api/v1/applies", json=body).status_code == 413
    assert large.post("/api/v1/applies", json=body).status_code not in (413, 500)
    for client in (small, large):
        for version in ("1.0.0", "1.0.1", "1.0.2"):
            answer = client.put("/api/v1/agents/kept", json={"spec": config_spec("kept", version=version)})
            assert answer.status_code == 200, answer.text
    kept = [len(c.get("/api/v1/agents/kept").json()["revisions"]) for c in (small, large)]
    assert kept == [1, 3]


def test_effect_server_drain_timeout(tmp_path: Path) -> None:
    """``server.drain_timeout``: a replaced revision still busy is stopped after it (logged)."""
    engine = Engine(_config({"memory": {"enabled": False}, "server": {"drain_timeout": 0.3}}), tmp_path / "data")
    engine.start()
    try:
        engine.deploy(wasm_spec("busy"), wat_module())
        serving = engine.router.acquire("busy", None)  # a message in flight on revision 1, never released
        assert serving is not None
        started = time.monotonic()
        engine.deploy(wasm_spec("busy", version="1.0.1"), wat_module(handle="nop"))
        waited = time.monotonic() - started
        lines = [line["message"] for line in engine.agent_logs("busy", 100)["lines"]]
    finally:
        engine.stop()
    assert any("after 0.3s of draining" in line for line in lines), lines
    assert waited >= 0.3


def test_effect_memory_choices_and_path(tmp_path: Path) -> None:
    """``sqlite_path`` is where the memory lives; ``backend`` (sqlite or postgres) and ``embedding_model``
    refuse anything else;
    ``tokenizer_path`` is the tokenizer the memory loads."""
    tokenizer = tmp_path / "no-tokenizer.json"
    engine = Engine(_config({"memory": {"sqlite_path": "mem/custom.db", "tokenizer_path": str(tokenizer)}}),
                    tmp_path / "data")
    engine.start()
    try:
        assert (tmp_path / "data" / "mem" / "custom.db").is_file()
        assert engine.memory is not None
        engine.memory.warm_up()
        health = engine.memory_health()
    finally:
        engine.stop()
    assert health["status"] == "unhealthy" and str(tokenizer) in health["message"]
    for key, value in (("backend", "qdrant"), ("embedding_model", "text-embedding-3-small")):
        with pytest.raises(ValidationFailed, match=f"memory.{key}: Input should be"):
            engine_config.load(_write(tmp_path / f"{key}.yaml", {"memory": {key: value}}), env={}, cwd=tmp_path)


def test_effect_history_retention_reaches_the_store(tmp_path: Path) -> None:
    """``conversations.retention`` and ``logging.agent_log_retention`` prune what the store keeps."""
    engine = Engine(_config({"memory": {"enabled": False}, "conversations": {"retention": "1s"},
                             "logging": {"agent_log_retention": "1s"}}), tmp_path / "data")
    engine.start()
    try:
        engine.deploy(config_spec("aged"), None)
        before = engine.agent_logs("aged", 100)["lines"]
        engine.send("aged", "remember-this", conversation_id="c")
        time.sleep(1.05)
        engine.send("aged", "later", conversation_id="c")  # turns and lines older than 1 s are gone
        reply = json.dumps(engine.send("aged", "again", conversation_id="c"))
        after = engine.agent_logs("aged", 100)["lines"]
    finally:
        engine.stop()
    assert "remember-this" not in reply and "later" in reply
    assert any("serving" in line["message"] for line in before), before
    assert not any("serving" in line["message"] for line in after), after


def test_effect_log_file_rotation_and_reopen(tmp_path: Path) -> None:
    """``max_file_size`` rotates the file, ``backup_count`` files are kept; reload re-opens a moved file."""
    path = tmp_path / "log" / "caxton.log"
    settings = LoggingSettings(file=str(path), format="json", max_file_size=2048, backup_count=2)
    log = logsetup.EngineLog(stream=open(os.devnull, "w"))  # noqa: SIM115 - closed with the log
    log.install(settings)
    try:
        for number in range(200):
            logsetup.logging.getLogger("caxton.test").warning("line %d %s", number, "x" * 40)
        files = sorted(p.name for p in path.parent.iterdir())
        assert files == ["caxton.log", "caxton.log.1", "caxton.log.2"]
        assert all(p.stat().st_size <= 2048 for p in path.parent.iterdir())
        last = json.loads(path.read_text().splitlines()[-1])
        assert last["message"].startswith("line 199") and last["logger"] == "caxton.test"
        path.rename(tmp_path / "moved.log")  # logrotate
        log.reload(ProjectConfig(logging=settings))
        logsetup.logging.getLogger("caxton.test").warning("after the reload")
        assert "after the reload" in path.read_text() and "after the reload" not in (tmp_path / "moved.log").read_text()
    finally:
        log.close()


def test_effect_defaults_and_environment_branch(
    run_cli: Callable[..., CliResult], engine_proc: EngineProcess, desired_repo: DesiredRepo,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """``defaults.engine`` (else the first engine of ``defaults.environment``) is the engine of commands given
    no --engine; ``environments.NAME.branch``: ``caxton reconcile --env NAME`` applies that branch."""
    monkeypatch.delenv("CAXTON_ENGINE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    closed = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "caxton.yaml").write_text(yaml.safe_dump({"defaults": {"engine": engine_proc.url}}))
    assert run_cli("health").code == 0
    (tmp_path / "caxton.yaml").write_text(yaml.safe_dump(
        {"environments": {"staging": {"engines": [closed, engine_proc.url]}}, "defaults": {"environment": "staging"}}))
    assert closed.removeprefix("http://") in run_cli("health").err  # the environment's first engine
    assert run_cli("health", "--engine", engine_proc.url).code == 0  # a flag beats the file
    assert "CAXTON_ENGINE_URL" not in os.environ  # set for one command only
    (tmp_path / "caxton.yaml").unlink()

    desired_repo.write("caxton.yaml", f"environments:\n  here:\n    engines: [{engine_proc.url}]\n"
                       f"  release:\n    engines: [{engine_proc.url}]\n    branch: release\n")
    desired_repo.commit("environments")
    desired_repo.repo.git.checkout("-b", "release")
    desired_repo.write("agents/extra.md", "---\nname: extra\nversion: 1.0.0\nsystem_prompt: hi\n---\n")
    desired_repo.commit("an agent on the release branch only")
    desired_repo.repo.git.checkout("main")
    config, clones = str(desired_repo.root / "caxton.yaml"), str(desired_repo.root.parent / "clones")
    source = ("--source", str(desired_repo.root), "--data-dir", clones, "--config", config)
    assert run_cli("reconcile", *source, "--env", "here").code == 0
    assert "extra" not in [a.id for a in status_api.state(engine_proc.client()).agents]
    assert run_cli("reconcile", *source, "--env", "release").code == 0
    assert "extra" in [a.id for a in status_api.state(engine_proc.client()).agents]


# --- effects, real processes: the production caxton.yaml the docs give -----------------------------------
def test_the_adjusted_production_config_starts_and_every_key_works(tmp_path: Path) -> None:
    """docs/operations.md's production caxton.yaml (the seeds' with a tokens file, without the refused keys):
    JSON log lines in the file naming agent, revision and request id; a metrics listener that asks for the
    token too; SIGHUP re-opens a log file moved away."""
    port, metrics_port = free_port(), free_port()
    tokens = write_tokens(tmp_path / "tokens.yaml", {"ops": (["admin"], None, None)})
    text = (ADJUSTED.read_text().replace("/etc/caxton/tokens.yaml", str(tmp_path / "tokens.yaml"))
            .replace("/var/lib/caxton", str(tmp_path / "data")).replace("/var/log/caxton", str(tmp_path / "log"))
            .replace("port: 8080", f"port: {port}").replace("metrics_port: 9090", f"metrics_port: {metrics_port}"))
    config = tmp_path / "caxton.yaml"
    config.write_text(text)
    log_file = tmp_path / "log" / "caxton.log"
    headers = {"Authorization": f"Bearer {tokens['ops']}"}
    with _serving([sys.executable, "-m", "caxton", "server", "start", "--config", str(config)], tmp_path,
                  f"http://127.0.0.1:{port}") as (proc, output):
        assert f"caxton metrics at http://0.0.0.0:{metrics_port}/metrics" in output()
        api, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
        body = {"spec": wasm_spec("trapper"), "module": _b64(wat_module(handle="unreachable"))}
        assert httpx.put(f"{api}/api/v1/agents/trapper", json=body, headers=headers, timeout=30).status_code == 200
        sent = httpx.post(f"{api}/api/v1/agents/trapper/messages", json={"content": "hi"},
                          headers={**headers, "X-Request-ID": "req-42"}, timeout=30)
        assert sent.status_code >= 500
        assert httpx.get(f"{metrics_url}/metrics", timeout=10).status_code == 401  # metrics_auth: token
        assert "caxton_http_requests_total" in httpx.get(f"{metrics_url}/metrics", headers=headers, timeout=10).text
        assert httpx.get(f"{metrics_url}/healthz", timeout=10).json()["status"] == "healthy"
        assert httpx.get(f"{metrics_url}/api/v1/agents", headers=headers, timeout=10).status_code == 404
        line = _wait_for_line(log_file, lambda entry: entry.get("request_id") == "req-42")
        assert line["agent"] == "trapper" and line["revision"] == 1 and line["level"] in ("warning", "error")
        assert {"time", "level", "logger", "message"} <= set(line)
        log_file.rename(tmp_path / "log" / "rotated.log")
        proc.send_signal(signal.SIGHUP)
        _wait_for_line(log_file, lambda entry: "settings reloaded" in entry["message"])
    assert "Traceback" not in output()


def test_caxton_up_writes_its_log_file_and_serves_metrics_on_their_port(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    project = tmp_path / "project"
    (project / "agents").mkdir(parents=True)
    (project / "agents" / "a.md").write_text("---\nname: a\nversion: 1.0.0\nsystem_prompt: hi\n---\n")
    _write(project / "caxton.yaml", {
        "server": {"port": port}, "memory": {"enabled": False},
        "logging": {"format": "json", "file": "log/up.log"},
        "observability": {"metrics_port": metrics_port, "metrics_auth": "none"},
    })
    command = [sys.executable, "-m", "caxton", "up", "--poll-interval", "100ms"]
    with _serving(command, project, f"http://127.0.0.1:{port}") as (proc, output):
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert scraped.status_code == 200 and "caxton_agents" in scraped.text
        proc.send_signal(signal.SIGHUP)
        line = _wait_for_line(project / "log" / "up.log", lambda entry: "settings reloaded" in entry["message"])
        assert line["logger"] == "caxton.engine.serving.reload" and line["level"] == "info"
    assert f"caxton metrics at http://127.0.0.1:{metrics_port}/metrics" in output()


# --- helpers -----------------------------------------------------------------------------------------------
def _config(data: dict[str, Any]) -> ProjectConfig:
    return ProjectConfig.model_validate(data)


_CLIENTS: list[TestClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().__exit__(None, None, None)


def _api(data_dir: Path, data: dict[str, Any]) -> TestClient:
    engine = Engine(_config({"memory": {"enabled": False}, **data}), data_dir)
    client = TestClient(create_app(engine), raise_server_exceptions=False, base_url="http://127.0.0.1")
    client.__enter__()
    _CLIENTS.append(client)
    return client


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    assert isinstance(out, dict)
    return out


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _environment() -> dict[str, str]:
    return EngineProcess(Path("unused")).environment()


@contextmanager
def _serving(command: list[str], cwd: Path, url: str) -> Iterator[tuple[subprocess.Popen[bytes], Callable[[], str]]]:
    """Run ``command`` until it answers ``url``/readyz; yield (process, its output so far); SIGTERM: exit 0."""
    log = cwd / "process.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=_environment())

    def output() -> str:
        return log.read_text(errors="replace")

    try:
        _until(lambda: _ready(url) or proc.poll() is not None, output, timeout=60)
        assert proc.poll() is None, output()
        yield proc, output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, output()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _until(done: Callable[[], bool], what: Callable[[], str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; output:\n{what()}")
        time.sleep(0.05)


def _wait_for_line(path: Path, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        lines = path.read_text().splitlines() if path.is_file() else []
        found[:] = [entry for entry in map(json.loads, lines) if wanted(entry)]
        return bool(found)

    _until(seen, lambda: path.read_text() if path.is_file() else f"{path} missing")
    return found[0]
