"""The Jinja2-free check of simple templates gives exactly the full check's answer."""

from __future__ import annotations

import pytest

from caxton.rules import templates

SIMPLE = [
    "Hello {{ request }}",
    "{{ requst }} and {{ memory_context }}\n{{ agent.name }} {{ foo.bar }}",
    "{{- request -}} {{range}}",
    "line1\nline2 {{ nope }}\n{{ nope }} {{ other }}",
    "no expressions at all } {",
    "Process this data request: {{request}}\nAvailable context: {{memory_context}}\n",
    "{% if memory_context %}Context: {{ memory_context }}{% endif %}",
    "{%- if not history -%}first{% elif nope %}x{% else %}{{ b }}{{ a }}{% endif %}",
    "{% if a %}{% if b %}{{ c }}{% endif %}{% else %}{% endif %}\n{{\n  late }}",
    "{% if\n  memory_context %}{{ request }}{% endif %}{{ zeta }} {{ alpha }}",
]
COMPLEX = ["{{ request | upper }}", "{% for x in history %}{{ x.content }}{% endfor %}", "{# c #}{{ request }}",
           "{{ request }", "{{ parameters['x'] }}", "{{ none }}", "{{ True }}", "{% if true %}x{% endif %}",
           "{% if %}x{% endif %}", "{% if a %}x", "{% endif %}", "{% if a %}{% else %}{% else %}{% endif %}",
           "{% if a %}{% else %}{% elif b %}{% endif %}", "{% else %}", "{% if a b %}{% endif %}",
           "{% if a == b %}{% endif %}", "{% endif x %}", "{% if a %}{% endif %}{% raw %}{{ x }}{% endraw %}"]


@pytest.mark.parametrize("source", SIMPLE)
def test_simple_templates_agree_with_jinja(source: str) -> None:
    fast = templates._check_simple(source)
    assert fast is not None
    assert fast == templates.check_with_jinja(source)


@pytest.mark.parametrize("source", COMPLEX)
def test_anything_else_goes_to_jinja(source: str) -> None:
    assert templates._check_simple(source) is None


@pytest.mark.parametrize("source", COMPLEX)
def test_whatever_the_path_the_answer_is_jinjas(source: str) -> None:
    templates._check_cached.cache_clear()
    assert tuple(templates.check_template(source)) == templates.check_with_jinja(source)
