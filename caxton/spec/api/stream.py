"""Wire models of the server-sent event stream ``GET /api/v1/events/stream`` (docs/api.md).

Each frame is ``event: <kind>`` and ``data: <one JSON object>``; the kinds and
their ``data``:

- ``event``: an engine event (``caxton.spec.api.agents.Event``, as ``GET /events``
  lists them), with ``id: <event id>``: the only frames with an id, so a
  reconnect's ``Last-Event-ID`` (or ``?after=``) resumes the event log exactly;
- ``rollout``: ``RolloutProgress``, a rollout's new step, status or analysis
  measurement, with the whole rollout as ``GET /rollouts/{agent}`` shows it;
- ``apply``: ``ApplyProgress``, one new progress line of an apply;
- ``overflow``: ``StreamEnd``, the client read too slowly and is dropped (the last
  frame; reconnect with ``Last-Event-ID``);
- ``end``: ``StreamEnd``, the stream ends (engine shutdown, or ``?timeout=`` passed).

``STREAM_DATA`` maps each kind to its ``data`` model. Pure data, as the rest of ``caxton.spec.api``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from caxton.spec.api.agents import Event
from caxton.spec.api.applies import ApplyLine, ApplyStatus
from caxton.spec.api.common import WireModel
from caxton.spec.api.rollouts import RolloutView


class StreamKind(StrEnum):
    EVENT = "event"
    ROLLOUT = "rollout"
    APPLY = "apply"
    OVERFLOW = "overflow"
    END = "end"


STREAM_KINDS = tuple(kind.value for kind in StreamKind)


class RolloutChange(StrEnum):
    #: Already in flight when the stream opened (the first frames of a stream).
    SNAPSHOT = "snapshot"
    #: Started, a new step, paused, resumed, or ended (``rollout.status`` says which).
    PROGRESS = "progress"
    #: New analysis measurements (``rollout.measurements`` ends with them).
    MEASUREMENT = "measurement"


class RolloutProgress(WireModel):
    """``event: rollout``: one change of a rollout, and the rollout as it is now."""

    agent: str
    change: RolloutChange
    message: str = Field(description="what changed, in words (the line `caxton apply` prints)")
    rollout: RolloutView


class ApplyProgress(WireModel):
    """``event: apply``: one new progress line of an apply (``GET /applies/{id}`` lists them all)."""

    apply_id: str
    plan_id: str
    status: ApplyStatus = Field(description="the apply's status after this line")
    git_commit: str | None = None
    line: ApplyLine


class StreamEnd(WireModel):
    """``event: end`` and ``event: overflow``: why the stream ends, and where to resume from."""

    reason: str = Field(description="shutdown, timeout, or overflow")
    last_event_id: int | None = Field(description="the id of the last ``event`` frame sent (None: none yet)")


#: The ``data`` model of each frame kind (``event: <kind>``).
STREAM_DATA: dict[str, type[WireModel]] = {
    StreamKind.EVENT: Event, StreamKind.ROLLOUT: RolloutProgress, StreamKind.APPLY: ApplyProgress,
    StreamKind.OVERFLOW: StreamEnd, StreamKind.END: StreamEnd,
}
