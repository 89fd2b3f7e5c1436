"""The one Jinja2 environment for prompt templates: sandboxed, strict.

Validation uses it to check syntax and variables; the engine's config-agent
runtime uses it to render. Operators' repositories are code: the sandbox
forbids attribute walking to Python internals.
"""

from __future__ import annotations

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Variables a prompt template may use, and what they hold at render time.
TEMPLATE_VARIABLES: dict[str, str] = {
    "request": "the message content sent to the agent (text, or JSON rendered as text)",
    "parameters": "the agent's parameters mapping",
    "memory_context": "entities retrieved from memory for this request ('' when memory is off)",
    "history": "earlier turns of this conversation: a list of {role, content}",
    "conversation_id": "the conversation id, or '' when none was given",
    "agent": "the agent: {name, version, revision}",
}


def make_environment() -> ImmutableSandboxedEnvironment:
    """A fresh sandboxed environment; undefined variables raise at render time."""
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
