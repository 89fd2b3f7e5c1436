"""CX306 knows the names a template defines itself: macros and their parameters, ``set`` and
``with``, loop variables and ``loop`` in a ``for`` body, ``caller``/``varargs``/``kwargs`` in a
macro, ``super``/``self`` with blocks; those Jinja2-defined names outside their scope are still
unknown (a name the template assigns anywhere counts as assigned everywhere: no scope analysis)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from caxton.rules import templates

KNOWN = [
    "{% macro greet(who, punct='!') %}Hi {{ who }}{{ punct }}{% endmacro %}{{ greet(request) }}",
    "{{ shout(request) }}{% macro shout(text) %}{{ text | upper }}{% endmacro %}",
    "{% for turn in history %}{{ loop.index }}/{{ loop.length }} {{ turn.content }}{% endfor %}",
    "{% for key, value in parameters.items() %}{% if loop.first %}{{ key }}={{ value }}{% endif %}{% endfor %}",
    "{% set sep = ' | ' %}{{ history | map(attribute='content') | join(sep) }}",
    "{% set intro %}Hello {{ agent.name }}{% endset %}{{ intro }}",
    "{% with limit = 3 %}{{ history[:limit] | length }}{% endwith %}",
    "{% macro box() %}[{{ caller() }}]{{ varargs | length }}{{ kwargs | length }}{% endmacro %}"
    "{% call box() %}{{ request }}{% endcall %}",
    "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}"
    "{% call(item) each(history) %}{{ item.role }}{% endcall %}",
    "{% block intro %}{{ request }}{% endblock %}{{ self.intro() }}",
]

UNKNOWN = {
    "{% for turn in history %}{{ turn }}{% endfor %}{{ loop.index }}": "loop",
    "{% macro box() %}{% endmacro %}{{ caller() }}": "caller",
    "{{ greet(request) }}{% macro great(who) %}{{ who }}{% endmacro %}": "greet",
}


@pytest.mark.parametrize("source", KNOWN)
def test_names_the_template_defines_are_known(source: str) -> None:
    assert templates.check_template(source) == []


@pytest.mark.parametrize("source", sorted(UNKNOWN))
def test_the_same_names_out_of_scope_are_still_unknown(source: str) -> None:
    found = [p.name for p in templates.check_template(source) if p.kind == "variable"]
    assert found == [UNKNOWN[source]]


def test_a_macro_renders_as_validated(repo: Callable[[dict[str, str | bytes]], Path], validate_json: Any) -> None:
    """An agent whose prompt uses a macro and ``loop`` validates clean through the CLI, and renders."""
    prompt = KNOWN[0] + " " + KNOWN[2]
    root = repo({"agents/a.toml": f'name = "alpha"\nversion = "1.0.0"\nsystem_prompt = """{prompt}"""\n'})
    code, report = validate_json(str(root))
    assert (code, report["diagnostics"]) == (0, [])
    rendered = templates.make_environment().from_string(prompt).render(request="Ann", history=[{"content": "hi"}])
    assert rendered == "Hi Ann! 1/1 hi"
