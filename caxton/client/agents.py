"""Agents: list, read, deploy, message, suspend, resume, remove; their logs, revisions and rollback.

Called by ``caxton agents|show|send|logs|history|rollback`` (``caxton.cli``). A deploy here is
one agent outside a plan; plans are applied through ``caxton.client.plan_apply``.
"""

from __future__ import annotations

import base64

from caxton.client.transport import EngineClient, actor, segment
from caxton.spec import api


def summaries(client: EngineClient) -> list[api.AgentSummary]:
    """Every agent the engine knows, with its state and serving revision."""
    return client.call(api.AgentList, "GET", "/agents").agents


def get(client: EngineClient, name: str) -> api.AgentDetail:
    return client.call(api.AgentDetail, "GET", f"/agents/{segment(name)}")


def logs(client: EngineClient, name: str, limit: int = 100) -> list[api.LogLine]:
    return client.call(api.AgentLogs, "GET", f"/agents/{segment(name)}/logs", params={"limit": limit}).lines


def history(client: EngineClient, name: str) -> api.AgentHistory:
    """The agent's revisions, newest first."""
    return client.call(api.AgentHistory, "GET", f"/agents/{segment(name)}/revisions")


def deploy(
    client: EngineClient, spec: api.JsonObject, module: bytes | None = None, *, source: api.SourceRequest | None = None,
) -> api.OperationResult:
    """Create or update an agent from its spec JSON (and module bytes for WASM agents)."""
    name = str(spec.get("name", ""))
    body = api.DeployRequest(spec=spec, module=base64.b64encode(module).decode("ascii") if module is not None
                             else None, source=source or api.SourceRequest())
    return client.call(api.OperationResult, "PUT", f"/agents/{segment(name)}", json=body.model_dump(mode="json"))


def send(client: EngineClient, name: str, content: api.JsonValue, *,
         conversation_id: str | None = None) -> api.MessageReply:
    body = {"content": content, "conversation_id": conversation_id}
    return client.call(api.MessageReply, "POST", f"/agents/{segment(name)}/messages", json=body)


def config_reply(reply: api.MessageReply) -> api.ConfigAgentReply | None:
    """The typed reply of a config agent (its tool calls and model rounds: the trace); None for a WASM agent's."""
    from pydantic import ValidationError

    if not isinstance(reply.reply, dict) or "provider" not in reply.reply:
        return None
    try:
        return api.ConfigAgentReply.model_validate(reply.reply)
    except ValidationError:
        return None


def suspend(client: EngineClient, name: str, *, source: api.SourceRequest | None = None) -> api.OperationResult:
    return _action(client, "suspend", name, source)


def resume(client: EngineClient, name: str, *, source: api.SourceRequest | None = None) -> api.OperationResult:
    return _action(client, "resume", name, source)


def remove(client: EngineClient, name: str, *, source: api.SourceRequest | None = None) -> api.OperationResult:
    params = source.model_dump(exclude_none=True) if source else {}
    return client.call(api.OperationResult, "DELETE", f"/agents/{segment(name)}", params=params)


def rollback(
    client: EngineClient, name: str, *, to_version: str | None = None, to_revision: int | None = None
) -> api.OperationResult:
    """Serve an earlier revision again (by version or revision number; default: the previous one)."""
    body = {"to_version": to_version, "to_revision": to_revision, "source": {"actor": actor()}}
    return client.call(api.OperationResult, "POST", f"/agents/{segment(name)}/rollback", json=body)


def _action(client: EngineClient, action: str, name: str, source: api.SourceRequest | None) -> api.OperationResult:
    body = api.ActionRequest(source=source).model_dump(mode="json")
    return client.call(api.OperationResult, "POST", f"/agents/{segment(name)}/{action}", json=body)
