"""A Caxton API token pasted into an agent file is shown as (sensitive) in plans, like other credentials."""

from __future__ import annotations

from caxton.rules.tokens import new_token
from caxton.rules import redact


def test_a_caxton_token_in_a_prompt_is_sensitive() -> None:
    token = new_token()[0]
    assert redact.is_sensitive(["system_prompt"], f"call the engine with {token}")
    assert not redact.is_sensitive(["system_prompt"], "cxt_ is just a prefix here")
