"""An apply's changes: parsed from a submission, put in order, and described in its progress and its end.

Pure helpers of ``caxton.engine.applies.ApplyRunner`` (no I/O): ``parse`` reads a
submission's changes (each spec parsed once), ``order`` sorts them, ``starting`` and
``finished`` word a change's progress lines, ``outcome`` is an apply's status from its
changes', and ``aftermath`` / ``cut_results`` say what an apply cut short (by a dead
engine, an outage) left behind: which changes landed and which were not made.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from caxton.engine.intake import Prepared, parse_spec
from caxton.engine.state.applies import ApplyRecord
from caxton.errors import InvalidInput
from caxton.spec.api import ChangeAction

ACTIONS = tuple(action.value for action in ChangeAction)
#: The apply's status from its changes' statuses: the first one present wins.
OUTCOME_ORDER = ("failed", "interrupted", "rolled_back", "superseded")
#: A change that has not reached its outcome: not started, being made, or its rollout in flight.
OPEN = ("pending", "running", "paused")
LANDED = ("done", "unchanged")


@dataclass(frozen=True)
class Item:
    id: str
    action: str
    strategy: str
    #: The spec parsed once at submission and its module (None for a delete).
    prepared: Prepared | None

    def spec(self) -> Prepared:
        assert self.prepared is not None, "only a delete has no spec"
        return self.prepared


def parse(body: dict[str, Any]) -> list[Item]:
    """The changes of a submission (``POST /applies``); InvalidInput for a malformed one."""
    changes = body.get("changes")
    if not isinstance(changes, list):
        raise InvalidInput("the submission has no list of changes", hint="submit a plan made by `caxton plan`")
    return [_item(raw) for raw in changes]


def order(item: Item) -> tuple[int, bool]:
    """Creates, then replaces, updates and deletes; WASM agents first in each (a WASM tool before the config
    agents that list it: their revisions look their tools up when they start)."""
    kind = item.prepared.spec.kind if item.prepared is not None else ""
    return ACTIONS.index(item.action), kind != "wasm"


def outcome(record: ApplyRecord) -> str:
    statuses = {r.status for r in record.results}
    return next((s for s in OUTCOME_ORDER if s in statuses), "succeeded")


def aftermath(record: ApplyRecord) -> str:
    """What an apply cut short left behind, from its recorded progress (before ``cut_results``)."""
    landed = [r.id for r in record.results if r.status in LANDED]
    failed = [r.id for r in record.results if r.status == "failed"]
    not_made = [r.id for r in record.results if r.status == "pending"]
    midway = [r.id for r in record.results if r.status in ("running", "paused", "interrupted")]
    if record.status == "progressing":  # every change made; its rollouts go on under the rollout leader
        cut = "rollouts still in flight (they resume or roll back on their own): "
    else:
        cut = "cut while being made (each landed whole or not at all): "
    parts = [f"landed: {', '.join(landed) or 'none'}"]
    parts += [f"failed: {', '.join(failed)}"] if failed else []
    parts += [cut + ", ".join(midway)] if midway else []
    parts += [f"not made: {', '.join(not_made)}"] if not_made else []
    return "; ".join(parts) + "; `caxton plan` shows what is left and `caxton apply` converges"


def cut_results(record: ApplyRecord, why: str) -> None:
    """Every change of ``record`` without its outcome becomes ``interrupted``, saying ``why``."""
    for result in record.results:
        if result.status == "pending":
            result.status, result.message = "interrupted", f"not made: {why}"
        elif result.status in OPEN:
            result.status, result.message = "interrupted", f"cut short ({why}): {result.message}"


def starting(item: Item) -> str:
    verb = {"create": "creating", "update": "updating", "replace": "replacing", "delete": "deleting"}[item.action]
    note = ""
    if item.action in ("create", "replace") and item.strategy not in ("immediate", "graceful", "none", "drain"):
        note = " (a new agent has no serving revision to roll out from: it starts at once)"
    return f"{verb} ({item.strategy}){note}"


def finished(item: Item, outcome: dict[str, Any]) -> str:
    if outcome.get("action") in ("unchanged", "aborted") and outcome.get("note"):
        return str(outcome["note"])
    if outcome.get("action") == "unchanged":
        return "already up to date"
    if item.action == "delete":
        return "deleted"
    revision = outcome.get("revision")
    return f"revision {revision} serving ({outcome.get('state')})" if revision is not None else str(outcome.get("state"))


def _item(raw: Any) -> Item:
    if not isinstance(raw, dict) or raw.get("action") not in ACTIONS or not isinstance(raw.get("id"), str):
        raise InvalidInput(f"malformed change in the submission: {str(raw)[:120]}",
                           hint=f"each change needs an id and an action among {', '.join(ACTIONS)}")
    spec = parse_spec(raw.get("spec")) if raw["action"] != "delete" else None  # the one parse of this spec
    module = _module(raw.get("module"))
    return Item(raw["id"], raw["action"], str(raw.get("strategy") or "immediate"),
                Prepared(spec, module, redeploy=raw.get("redeploy") is True) if spec is not None else None)


def _module(text: Any) -> bytes | None:
    if text is None:
        return None
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("a module in the submission is not valid base64", hint="make the plan again") from None
