"""The OpenAPI document is the truth: schemathesis against a live engine finds nothing.

One real engine (``tests.support.engine``: a ``caxton server start``
subprocess with a token and memory enabled), the quickstart applied to it,
then every operation of its ``/openapi.json`` called with a few generated
requests each (bounded, derandomised) and checked: no 5xx, every status and
media type documented, every body valid against its documented schema, every
documented header present. The engine is thrown away afterwards, so the
destructive operations (delete an agent, force the lock, vacuum) do not matter.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.engine import EngineProcess, running_engine
from tests.support.paths import EXAMPLES

TOKEN = "contract-test-token-0123456789abcdef"
EXAMPLES_PER_OPERATION = 5
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_: Any, value: Any) -> bytes:
    """Bodies of ``POST /memory/import`` (JSON lines): a generated string is sent as it is."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def contract_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("contract")
    with running_engine(root, token=TOKEN, env={"CAXTON_MEMORY_ENABLED": "true"}) as process:
        yield process


@pytest.fixture(scope="module")
def deployed(contract_engine: EngineProcess, tmp_path_factory: pytest.TempPathFactory,
             run_cli_module: Callable[..., Any]) -> dict[str, Any]:
    """The quickstart applied, two entities related, a backup taken: real values for the path parameters."""
    work = tmp_path_factory.mktemp("quickstart")
    shutil.copytree(EXAMPLES / "agents", work / "agents")
    shutil.copytree(EXAMPLES / "wasm", work / "wasm")
    shutil.copy(EXAMPLES / "caxton.yaml", work / "caxton.yaml")
    code = run_cli_module("apply", str(work / "agents"), "--engine", contract_engine.url, "--token", TOKEN, "--auto-approve")
    assert code == 0, contract_engine.log_text()[-2000:]
    with contract_engine.client() as client:
        ada, bob = (client.request("POST", "/memory/entities", json={"name": name, "entity_type": "person"})
                    for name in ("ada", "bob"))
        relation = client.request("POST", "/memory/relations",
                                  json={"from_id": ada["id"], "to_id": bob["id"], "relation_type": "knows"})
        backup = client.request("POST", "/backups")
        applied = client.request("GET", "/applies")["applies"][0]
    return {"name": "scorer", "entity_id": ada["id"], "relation_id": relation["id"], "apply_id": applied["id"],
            "backup": backup["name"]}


@pytest.fixture(scope="module")
def run_cli_module() -> Callable[..., int]:
    from caxton.cli import main as cli_main

    def run(*args: str) -> int:
        return cli_main.main(list(args))

    return run


def _operations(engine: EngineProcess) -> list[Any]:
    document = httpx.get(engine.url + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    schema = schemathesis.openapi.from_dict(document)
    return [result.ok() for result in schema.get_all_operations()]


def _bounded(case: Any) -> Any:
    """A case of the event stream (which never ends by itself) with a short ``timeout``: it answers whole."""
    if case.operation.path == "/api/v1/events/stream":
        case.query = {**(case.query or {}), "timeout": 0.2}
    return case


def _run(engine: EngineProcess, operation: Any, strategy: Any) -> str | None:
    """Call ``operation`` with a few cases of ``strategy``; the first finding, if any."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    strategy = strategy.map(_bounded)

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case: Any) -> None:
        case.call_and_validate(base_url=engine.url, headers=headers, checks=CHECKS, timeout=30)

    try:
        check()
    except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - collect every finding, then fail once
        return f"{operation.method.upper()} {operation.path}: {error}"
    return None


def _known(values: dict[str, Any]) -> Callable[[Any], Any]:
    def fill(case: Any) -> Any:
        wanted = {key: values["backup"] if key == "name" and "backups" in case.operation.path else values[key]
                  for key in (case.path_parameters or {}) if key in values}
        case.path_parameters = {**(case.path_parameters or {}), **wanted}
        return case

    return fill


def test_every_operation_conforms(contract_engine: EngineProcess, deployed: dict[str, Any]) -> None:
    operations = _operations(contract_engine)
    assert len(operations) >= 45
    # Generated requests first (mostly refusals: unknown names, invalid bodies), then the same operations
    # on things that exist (successes), deletions last so the reads find what they look for.
    generated = [_run(contract_engine, op, op.as_strategy()) for op in operations]
    ordered = sorted((op for op in operations if "{" in op.path), key=lambda op: op.method.upper() == "DELETE")
    existing = [_run(contract_engine, op, op.as_strategy().map(_known(deployed))) for op in ordered]
    findings = [found for found in generated + existing if found]
    assert not findings, "\n\n".join(findings)


def test_the_document_declares_the_error_body_security_and_readable_ids(api: Any) -> None:
    """In-process and fast: what schemathesis cannot see (ids, schemes, FastAPI's default 422 gone)."""
    document = api.get("/openapi.json").json()
    operations = [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)) and all(i[0].islower() and "_" not in i for i in ids), ids
    assert {"listAgents", "sendMessage", "submitApply", "exportMemory"} <= set(ids)
    assert document["components"]["securitySchemes"]["bearer"] == {
        **document["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, method, op in operations:
        open_probe = path in ("/api/v1/health", "/api/v1/ready", "/healthz", "/readyz")
        assert op["security"] == ([] if open_probe else [{"bearer": []}]), (method, path)
        refusals = {code: r for code, r in op["responses"].items() if int(code) >= 400}
        assert {"403", "431", "500"} <= set(refusals), (method, path)
        assert all(r["content"] == {"application/json": {"schema": error}} for r in refusals.values()), (method, path)
        success = op["responses"][min(op["responses"])]
        schemas = [media.get("schema") or media.get("itemSchema")  # itemSchema: each event of an event stream
                   for media in success.get("content", {}).values()]
        assert schemas and all(schemas), f"{method} {path}: untyped success"
