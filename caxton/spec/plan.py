"""The plan: a versioned, serialisable description of what apply will do.

A plan is made by ``caxton.planning`` from the desired state and the engine's
state snapshot. It holds no secrets and no agent specs: ``apply`` reloads the
desired state from the plan's ``source`` and refuses the plan when the
desired-state digest or the engine's serial no longer match (stale plan).
The JSON form is a contract documented in docs/plan-format.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, SerializerFunctionWrapHandler, model_serializer

FORMAT_VERSION = 1

Action = Literal["create", "update", "replace", "delete", "no-op"]
ACTIONS: tuple[Action, ...] = ("create", "update", "replace", "delete", "no-op")
#: Text symbols, Terraform style.
SYMBOLS: dict[str, str] = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "no-op": " "}

SENSITIVE = "(sensitive)"


class FieldChange(BaseModel):
    """One field-level difference between the live spec (before) and the desired one (after)."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="dotted path, list items as [i], e.g. llm.model or tools[2]")
    op: Literal["add", "remove", "change"]
    before: Any = None
    after: Any = None
    sensitive: bool = False


class AgentChange(BaseModel):
    """What apply will do to one agent."""

    id: str
    name: str
    kind: str
    action: Action
    reason: str = Field(description="for display only; never parse it")
    drift: bool = Field(False, description="the engine was changed outside git")
    strategy: str = Field(description="how apply performs the change (rollout strategy, 'drain', 'resume')")
    file: str | None = Field(None, description="desired-state file, relative to the source root")
    version_before: str | None = None
    version_after: str | None = None
    digest_before: str | None = None
    digest_after: str | None = None
    module_before: str | None = Field(None, description="WASM module sha256 on the engine")
    module_after: str | None = Field(None, description="WASM module sha256 in the desired state")
    revision_before: int | None = None
    state_before: str | None = None
    rollout_id: str | None = Field(None, description="the agent's rollout in flight on the engine, if any "
                                   "(left alone by a no-op, aborted or superseded by an update)")
    changes: list[FieldChange] = Field(default_factory=list)
    tools_changed: list[str] = Field(
        default_factory=list, description="WASM tools the agent lists that this plan changes: apply starts a new "
        "revision of the agent even when its own spec is unchanged (left out when empty)")

    @model_serializer(mode="wrap")
    def _without_unchanged_tools(self, handler: SerializerFunctionWrapHandler, _: SerializationInfo) -> Any:
        """Leave ``tools_changed`` out while empty: plans without WASM tools read as before."""
        data = handler(self)
        if isinstance(data, dict) and not data.get("tools_changed"):
            data.pop("tools_changed", None)
        return data


class PlanSource(BaseModel):
    """Where the desired state was read: apply reads it again from here."""

    path: str = Field(description="absolute path of the directory or file planned (older plans: relative to "
                      "the directory plan ran in)")
    ref: str | None = None
    git_commit: str | None = None


class PlanOptions(BaseModel):
    prune: bool = True
    allow_delete_all: bool = False


class Plan(BaseModel):
    """The plan file / JSON output."""

    format_version: int = FORMAT_VERSION
    plan_id: str
    created_at: str
    engine_url: str
    engine_serial: int
    desired_digest: str
    source: PlanSource
    options: PlanOptions = Field(default_factory=PlanOptions)
    targets: list[str] | None = Field(None, description="the agents planned with --target (ids); null: every agent")
    changes: list[AgentChange] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {action: 0 for action in ACTIONS}
        for change in self.changes:
            out[change.action] += 1
        return out

    @property
    def has_changes(self) -> bool:
        return any(change.action != "no-op" for change in self.changes)

    def actionable(self) -> list[AgentChange]:
        return [change for change in self.changes if change.action != "no-op"]

    def in_flight(self) -> list[AgentChange]:
        """No-ops of agents whose rollout to the desired spec is still in flight on the engine."""
        return [change for change in self.changes if change.action == "no-op" and change.rollout_id]
