"""The CLI's view layer: one dispatch for every result type, the one table and the one traffic formatter."""

from __future__ import annotations

import importlib
import json

import pytest

from caxton.cli.common import Output
from caxton.cli.views import registry, render, rendered
from caxton.cli.views.text import table, traffic
from caxton.spec import api

#: Where the result types that views render are defined (beside the views' own wrappers).
RESULT_MODULES = ("caxton.spec.api", "caxton.client.plan_apply", "caxton.reconcile.passes")


def test_every_view_names_a_type_that_exists() -> None:
    text, own_json = registry.registered()
    known = {name for module in RESULT_MODULES for name in dir(importlib.import_module(module))}
    known |= {name for module in registry.MODULES for name in dir(importlib.import_module(f"caxton.cli.views.{module}"))}
    assert (text | own_json) - known == set()


def test_every_json_view_has_a_text_view() -> None:
    text, own_json = registry.registered()
    assert own_json - text == set()


def test_render_writes_the_wire_json_or_the_text_with_notes_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    report = api.ImportReport(created=1, updated=2, skipped=0, relations=3, errors=["line 4: bad"])
    render(report, Output.json)
    assert json.loads(capsys.readouterr().out) == api.wire(report)
    render(report, Output.text)
    shown = capsys.readouterr()
    assert shown.out == "imported: 1 created, 2 updated, 0 skipped, 3 relations\n"
    assert shown.err == "warning: line 4: bad\n"
    assert rendered(report, Output.text) == shown.out


def test_an_unknown_result_type_is_a_bug_not_silence() -> None:
    with pytest.raises(TypeError, match="no text view of object"):
        rendered(object(), Output.text)


def test_the_table_sizes_columns_to_their_widest_cell_and_cuts_trailing_blanks() -> None:
    assert table(["NAME", "REASON"], [["scorer", ""], ["data-processor", "paused"]]) == [
        "NAME            REASON", "scorer", "data-processor  paused"]
    assert table(["A", "B"], [], indent="  ") == ["  A  B"]
    assert table(["ID", "CHANGES"], [["a1", "2 done"]], gap=" ", widths=(4, 0)) == ["ID   CHANGES", "a1   2 done"]


def test_traffic_in_short_and_long_form() -> None:
    assert traffic({"1": 90, "2": 10}) == "r1 90%, r2 10%"
    assert traffic({"1": 90, "2": 10}, long=True) == "revision 1: 90 %, revision 2: 10 %"
    assert traffic({}) == traffic({}, long=True) == "-"
