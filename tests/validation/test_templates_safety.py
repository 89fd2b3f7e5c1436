"""CX309: what the template sandbox refuses, and what burns the engine, is found in the parsed tree.

The tree is never compiled or optimized here: Jinja2 constant-folds at compile time, and
``{{ 10**(10**7) }}`` held the interpreter 19 s. The fast path for simple templates stays, except
for the refused words.
"""

from __future__ import annotations

import pytest

from caxton.rules import templates

ISSUE_EXAMPLES = {
    "{{ ''.__class__.__mro__[1].__subclasses__() }}": "attribute '__class__': names beginning with '_'",
    "{{ request * 10**7 }}": "repeats a value of unknown size 10,000,000 times",
    "{{ 'x' * 10**9 }}": "repetition builds 1,000,000,000 items",
    "{{ 10**(10**7) }}": "raises to the power 10,000,000: the result would be huge",
}

REFUSED = {
    "{{ x['__class__'] }}": "item '__class__'",
    "{{ request|attr('__class__') }}": "attr filter on attribute '__class__'",
    "{{ history|map(attribute='__class__')|list }}": "map filter on attribute '__class__'",
    "{{ history|sort(attribute='x.__dict__') }}": "sort filter on attribute '__dict__'",
    "{{ history|selectattr('__class__')|list }}": "selectattr filter on attribute '__class__'",
    "{{ lipsum.__globals__ }}": "attribute '__globals__'",
    "{{ cycler.__init__.__globals__.os }}": "attribute '__init__'",
    "{{ request.mro }}": "attribute 'mro' reaches interpreter internals",
    "{{ agent.func_globals }}": "attribute 'func_globals'",
    "{{ history.f_globals }}": "attribute 'f_globals'",
    "{{ __builtins__ }}": "uses '__builtins__'",
    "{{ os.system('id') }}": "uses 'os'",
    "{{ history.append(1) }}": "uses 'append'",
    "{% for i in range(10**6) %}{% endfor %}": "range over more than 100,000 numbers",
    "{{ range(-1000000, 0)|list }}": "range over more than 100,000 numbers",
    "{{ [1, 2] * 100000 }}": "repetition builds 200,000 items",
    "{{ 1001 * request }}": "repeats a value of unknown size 1,001 times (limit 1,000)",
    "{{ request * parameters.n }}": "by a factor that is not a small literal number",
    "{{ memory_context * (request|length) }}": "by a factor that is not a small literal number",
    "{{ 2 ** parameters.n }}": "raises to a power that is not a small literal number",
    "{{ 99 ** 9999 }}": "raises to the power 9,999: the result would be huge",
    "{{ '%0999999d' % 1 }}": "width or precision over 10,000",
    "{{ '%*d' % (parameters.n, 1) }}": "width or precision over 10,000",
}

ACCEPTED = [
    "You are {{ agent.name }}, version {{ agent.version }}.",
    "{% if memory_context %}Context:\n{{ memory_context }}{% endif %}\nRequest: {{ request }}",
    "{% for turn in history %}{{ turn.role }}: {{ turn.content }}\n{% endfor %}",
    "{{ '-' * 40 }}\n{{ request | truncate(200) }}\n{{ 2 ** 10 }} {{ parameters.price * 100 }}",
    "{{ request * 3 }} {{ [0] * 10 }} {% for i in range(10) %}{{ i }}{% endfor %} {{ range(100000)|length }}",
    "{{ parameters.items()|list }} {{ history|map(attribute='content')|join(', ') }} {{ '%5d' % 3 }}",
    "{{ request.split()|first }} {{ request.upper() }} {{ '{:>10}'.format(request) }}",
    "{% for input in history %}{{ input.content }}{% endfor %}{% set open = '(' %}{{ open }}",
]


def _unsafe(source: str) -> list[templates.TemplateProblem]:
    return [p for p in templates.check_template(source) if p.kind == "unsafe"]


@pytest.mark.parametrize("source", sorted(ISSUE_EXAMPLES))
def test_the_issue_examples_are_refused_where_they_are_written(source: str) -> None:
    found = _unsafe(source)
    assert found, source
    assert ISSUE_EXAMPLES[source] in " / ".join(p.message for p in found)
    assert all(p.line == 1 and p.column > 1 for p in found)


def test_the_ssti_example_names_each_internal_attribute_at_its_column() -> None:
    source = "Be nice.\n{{ ''.__class__.__mro__[1].__subclasses__() }}"
    found = [(p.line, p.column, p.name) for p in _unsafe(source)]
    assert found == [(2, 7, "__class__"), (2, 17, "__mro__"), (2, 28, "__subclasses__")]


@pytest.mark.parametrize("source", sorted(REFUSED))
def test_escapes_and_burners_are_refused(source: str) -> None:
    found = _unsafe(source)
    assert any(REFUSED[source] in p.message for p in found), (source, found)


@pytest.mark.parametrize("source", ACCEPTED)
def test_ordinary_prompts_pass(source: str) -> None:
    assert templates.check_template(source) == []


@pytest.mark.parametrize("source", ["{{ request.__class__ }}", "{{ request.mro }}", "{% if __builtins__ %}x{% endif %}",
                                    "{{ os }}", "{{ history.pop }}"])
def test_refused_words_leave_the_fast_path_for_jinja2(source: str) -> None:
    assert templates._check_simple(source) is None
    assert _unsafe(source)


def test_simple_templates_keep_the_fast_path() -> None:
    assert templates._check_simple("Hi {{ agent.name }}{% if request %} {{ request }}{% endif %}") == ()


def test_an_unknown_unsafe_name_is_reported_once_as_unsafe_not_as_unknown_variable() -> None:
    kinds = [p.kind for p in templates.check_template("{{ os.popen('id').read() }} {{ __builtins__ }}")]
    assert kinds == ["unsafe", "unsafe"]


def test_neither_the_checker_nor_the_engine_constant_folds() -> None:
    from caxton.llm.templating import BoundedSandbox

    assert templates.make_environment().optimized is False
    env = BoundedSandbox()
    assert env.optimized is False
    code = env.compile("{{ 10**(10**7) }}{{ 'x'|center(1000000000) }}", raw=True)
    assert "call_binop" in code and "1000000000" in code
    assert len(code) < 10_000  # nothing was evaluated into the code
