"""Views of ``caxton applies`` and of following an apply: the list, one apply, the apply lock, and the
events of a follower (a paused rollout waited on, a timeout, the outcome), as text or JSON lines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from caxton.cli.views.registry import Event, Note, event, json_view, text_view
from caxton.cli.views.text import counted, table

if TYPE_CHECKING:
    from caxton.client.plan_apply import ApplyOutcome
    from caxton.spec.api import ApplySummary, ApplyView, LockRelease, LockStatus


@dataclass(frozen=True)
class Applies:
    """``applies list``: the recent applies, newest first (JSON: ``{"applies": [...]}``)."""

    found: list[ApplySummary]


@json_view("Applies")
def applies_json(applies: Applies) -> Any:
    return {"applies": applies.found}


@text_view("Applies")
def applies_text(applies: Applies) -> list[str]:
    if not applies.found:
        return ["no applies"]
    rows = [(view.id, view.status, view.submitted_at, (view.git_commit or "-")[:12], _changes(view))
            for view in applies.found]
    return table(("ID", "STATUS", "SUBMITTED", "COMMIT", "CHANGES"), rows, gap=" ", widths=(13, 12, 27, 13, 0))


def _changes(view: ApplySummary) -> str:
    counts: dict[str, int] = {}
    for result in view.results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return counted(counts, "-")


@text_view("ApplyView")
def apply_text(view: ApplyView) -> Iterator[str]:
    yield f"apply {view.id} {view.status} (plan {view.plan_id[:12]}, by {view.holder})"
    yield f"  submitted {view.submitted_at}" + (f", finished {view.finished_at}" if view.finished_at else "")
    if view.git_commit:
        yield f"  commit    {view.git_commit}"
    if view.reason:
        yield f"  reason    {view.reason}"
    for result in view.results:
        revision = f" [revision {result.revision}]" if result.revision is not None else ""
        message = result.message.removeprefix(f"{result.status}: ")
        yield f"  {result.id}: {result.action} ({result.strategy}) {result.status}: {message}{revision}"
    if view.log:
        yield "progress:"
        for line in view.log:
            yield f"  {line.at} {line.agent or '(apply)'}: {line.message}"


@text_view("LockStatus")
def lock_text(result: LockStatus) -> list[str]:
    lease = result.lease
    if lease is None:
        return ["free"]
    return [f"held by {lease.holder} ({lease.reason or 'no reason'}) since {lease.created_at}; "
            f"expires in {lease.expires_in:.0f}s"]


@text_view("LockRelease")
def released_text(result: LockRelease) -> list[str]:
    released = result.released
    return [f"released the lock held by {released.holder}" if released else "the lock was already free"]


# --- a follower's events ------------------------------------------------------------------------
@dataclass(frozen=True)
class Waiting:
    """A rollout paused for lack of traffic, with the commands that end it."""

    agent: str
    message: str
    promote: str
    abort: str


@json_view("Waiting")
def waiting_json(waiting: Waiting) -> Event:
    return event("waiting", agent=waiting.agent, message=waiting.message, promote=waiting.promote,
                 abort=waiting.abort)


@text_view("Waiting")
def waiting_text(waiting: Waiting) -> list[str]:
    return [Note(f"waiting for {waiting.agent}: its rollout is paused; it goes on by itself when enough traffic "
                 f"arrives, or run `{waiting.promote}` (all traffic to the new version) or `{waiting.abort}` "
                 "(back to the stable version)")]


@dataclass(frozen=True)
class TimedOut:
    """An apply still going at ``--timeout``: what it waits for, with ``commands(agent)`` -> (promote, abort)."""

    view: ApplyView
    commands: Callable[[str], tuple[str, str]]


@json_view("TimedOut")
def timed_out_json(timed_out: TimedOut) -> Event:
    from caxton.spec.api import wire

    view = timed_out.view
    return event("timeout", apply_id=view.id, status=view.status, results=[wire(r) for r in view.results])


@text_view("TimedOut")
def timed_out_text(timed_out: TimedOut) -> Iterator[str]:
    from caxton.client import plan_apply

    for result in plan_apply.pending(timed_out.view):
        promote, abort = timed_out.commands(result.id)
        state = "paused" if result.status == "paused" else "still in progress"
        yield Note(f"{result.id}: rollout {state}: {result.message.removeprefix('paused: ')}")
        yield Note(f"  promote it: {promote}")
        yield Note(f"  abort it:   {abort}")


@json_view("ApplyOutcome")
def outcome_json(outcome: ApplyOutcome) -> Event:
    from caxton.spec.api import wire

    extra = {"reason": outcome.reason} if outcome.reason else {}
    return event("outcome", apply_id=outcome.apply_id, status=outcome.status, counts=outcome.counts(),
                 results=[wire(r) for r in outcome.results], **extra)


@text_view("ApplyOutcome")
def outcome_text(outcome: ApplyOutcome) -> Iterator[str]:
    counts = counted(outcome.counts(), "no change")
    if outcome.status == "progressing":
        yield (f"\nApply {outcome.apply_id} accepted: {counts}. The engine carries on; follow it with "
               f"`caxton applies follow {outcome.apply_id}`.")
    elif outcome.status != "nothing":
        yield f"\nApply {outcome.status}: {counts}."
        if outcome.status == "superseded":
            yield "A newer apply superseded its rollout(s): see `caxton applies list`."
