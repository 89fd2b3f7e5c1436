"""What enters the engine: an agent spec parsed and checked once at the edge, and its module checked.

``Prepared`` is made where a spec enters (``Engine.deploy``, an apply's
submission, a rollback, a rollout's supersede) and passed down to
``caxton.engine.operations.Operations``, which never parses it again.
``parse_spec`` turns a spec JSON object into the agent model (every problem
listed); ``module_for`` checks a WASM agent's module against its limits and
its sha256 pin. No store, no runtime: the caller passes what it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic

from caxton.engine.factory import AgentModel
from caxton.errors import InvalidInput, PayloadTooLarge, ValidationFailed
from caxton.rules import templates
from caxton.spec.agent import ConfigAgent, parse_agent
from caxton.spec.digest import sha256_hex


@dataclass(frozen=True)
class Prepared:
    """A revision to deploy: its spec parsed and checked once, at the edge, and its module (WASM agents).

    Made where a spec enters the engine (``Engine.deploy``, an apply's submission, a rollback) and passed
    down through the rollout controller to ``Operations``, which never parse it again.
    """

    spec: AgentModel
    module: bytes | None = None
    #: Start a new revision even when the spec is the serving one's (an apply's change of a config agent
    #: whose WASM tool changed: its new revision reads the tool's new description and schema).
    redeploy: bool = False

    @classmethod
    def of(cls, spec_json: Any, module: bytes | None) -> Prepared:
        """Parse ``spec_json`` (``parse_spec``: raises ``ValidationFailed`` listing every problem)."""
        return cls(parse_spec(spec_json), module)


def parse_spec(spec_json: Any, *, check_templates: bool = True) -> AgentModel:
    """The agent model of a spec JSON object; raises ``ValidationFailed`` listing every problem.

    ``check_templates`` refuses unsafe templates (CX309): at deploy, not when a stored
    revision restarts (one deployed before the check still serves, bounded at render).
    """
    if not isinstance(spec_json, dict):
        raise InvalidInput("the agent spec must be a JSON object", hint="send the agent file's fields as JSON")
    try:
        spec = parse_agent(spec_json)
    except pydantic.ValidationError as error:
        problems = [
            {"loc": ".".join(str(p) for p in item["loc"]), "message": item["msg"]} for item in error.errors()
        ]
        first = problems[0]
        raise ValidationFailed(
            f"agent spec is invalid: {first['loc'] or 'spec'}: {first['message']}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            hint="run `caxton validate` on the agent file",
            details=problems,
        ) from None
    if check_templates and isinstance(spec, ConfigAgent):
        templates.refuse_unsafe(spec.name, {"system_prompt": spec.system_prompt,
                                            "user_prompt_template": spec.user_prompt_template or ""})
    return spec


def module_for(spec: AgentModel, module: bytes | None, stored: Callable[[str], bytes | None]) -> bytes | None:
    """The checked module of ``spec``: the one sent, or the stored one it pins (``stored``: a blob by sha256).

    Raises when a config agent gets a module, a WASM agent has none, or it is too large or not the pinned one.
    """
    if isinstance(spec, ConfigAgent):
        if module is not None:
            raise InvalidInput(f"config agent {spec.name!r} takes no module", hint="send \"module\": null")
        return None
    if module is None and spec.sha256:
        module = stored(spec.sha256)
    if module is None:
        raise InvalidInput(
            f"WASM agent {spec.name!r} needs its module",
            hint="send the module base64-encoded, or pin the sha256 of a module the engine already holds",
        )
    limit = spec.resource_limits.max_module_size
    if len(module) > limit:
        raise PayloadTooLarge(
            f"module of {spec.name!r} is {len(module)} bytes; the limit is {limit}",
            hint="shrink the module or raise resource_limits.max_module_size",
        )
    actual = sha256_hex(module)
    if spec.sha256 and spec.sha256 != actual:
        raise ValidationFailed(
            f"module of {spec.name!r} has sha256 {actual}, but the agent pins {spec.sha256}",
            hint="rebuild the module or update the sha256 pin in the agent file",
        )
    return module
