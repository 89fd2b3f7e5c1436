"""``--target AGENT``: narrow a plan to the named agents (pure).

``select`` keeps only the changes of the targeted agents (matched by
identity, so ``DataProcessor`` targets ``data-processor``) and records the
targets in the plan (``Plan.targets``); the changes of every other agent are
left out, so apply neither submits nor waits for them. A name that is
neither in the desired state nor on the engine is an error with a "did you
mean" among the plan's agents. Called by ``caxton.client.plan_apply.make`` after
``caxton.planning.build.make_plan``.
"""

from __future__ import annotations

from collections.abc import Sequence

from caxton.errors import InvalidInput
from caxton.spec import identity
from caxton.spec.plan import Plan
from caxton.rules import suggest


def select(plan: Plan, targets: Sequence[str]) -> Plan:
    """``plan`` with only the changes of ``targets`` (all of it when ``targets`` is empty)."""
    if not targets:
        return plan
    known = [change.id for change in plan.changes]
    wanted = sorted({_known_id(name, known) for name in targets})
    kept = [change for change in plan.changes if change.id in wanted]
    return plan.model_copy(update={"changes": kept, "targets": wanted})


def _known_id(name: str, known: list[str]) -> str:
    agent = identity.agent_id(name)
    if agent in known:
        return agent
    fallback = f"--target takes {suggest.one_of(known)}" if known else "there are no agents to target here"
    raise InvalidInput(f"--target {name}: no agent {name!r} in the desired state or on the engine",
                       hint=suggest.did_you_mean(agent, known, fallback=fallback))
