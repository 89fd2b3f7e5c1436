"""The records of the engine's store: agents, revisions, events, and who caused a change (``Source``).

Frozen rows as ``caxton.engine.state.store.Store`` reads them (``*_from_row``
map a database row) and as a ``caxton.engine.state.transaction.Transaction``
writes them, with the UTC timestamps they carry (``utcnow``). Pure data: no
SQL here. Read by the engine's operations, rollouts, replicas and routes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from caxton.engine import states


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Source:
    """Who or what caused a change (recorded on revisions and events)."""

    actor: str | None = None
    plan_id: str | None = None
    git_commit: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Source:
        data = data or {}
        return cls(
            actor=_opt_str(data.get("actor")),
            plan_id=_opt_str(data.get("plan_id")),
            git_commit=_opt_str(data.get("git_commit")),
        )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class AgentRow:
    id: str
    name: str
    kind: str
    state: str
    revision: int | None
    applied_spec_digest: str | None
    traffic: dict[str, int]
    git_commit: str | None
    plan_id: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class RevisionRow:
    agent_id: str
    number: int
    version: str
    spec_sha256: str
    module_sha256: str | None
    spec_digest: str
    created_at: str
    actor: str | None
    plan_id: str | None
    git_commit: str | None


@dataclass(frozen=True)
class EventRow:
    id: int
    at: str
    serial: int
    agent_id: str | None
    what: str
    from_state: str | None
    to_state: str | None
    revision: int | None
    message: str
    actor: str | None
    plan_id: str | None
    git_commit: str | None
    data: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": self.at, "serial": self.serial, "agent": self.agent_id, "what": self.what,
            "from_state": self.from_state, "to_state": self.to_state, "revision": self.revision,
            "message": self.message, "actor": self.actor, "plan_id": self.plan_id,
            "git_commit": self.git_commit, "data": self.data,
        }


def new_agent_row(agent_id: str, name: str, kind: str, source: Source) -> AgentRow:
    now = utcnow()
    return AgentRow(
        id=agent_id, name=name, kind=kind, state=states.initial(kind), revision=None,
        applied_spec_digest=None, traffic={}, git_commit=source.git_commit, plan_id=source.plan_id,
        created_at=now, updated_at=now,
    )


def agent_from_row(row: Any) -> AgentRow:
    return AgentRow(
        id=row["id"], name=row["name"], kind=row["kind"], state=row["state"], revision=row["revision"],
        applied_spec_digest=row["applied_spec_digest"], traffic=json.loads(row["traffic"]),
        git_commit=row["git_commit"], plan_id=row["plan_id"], created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


#: The columns of ``revisions`` (``Store.snapshot_rows`` reads them joined to ``agents``).
REVISION_COLUMNS = (
    "agent_id", "number", "version", "spec_sha256", "module_sha256", "spec_digest", "created_at", "actor",
    "plan_id", "git_commit",
)


def revision_from_row(row: Any) -> RevisionRow:
    return RevisionRow(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - Row iterates values


def event_from_row(row: Any) -> EventRow:
    values = {key: row[key] for key in row.keys()}  # noqa: SIM118 - Row iterates values
    values["data"] = None if values["data"] is None else json.loads(values["data"])
    return EventRow(**values)
