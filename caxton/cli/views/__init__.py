"""The CLI's view layer: one text and one JSON rendering per result type, and ``render`` to print either.

Commands parse, call the library, then ``render(result, output)``: the text view registered for the
result's type (``caxton.cli.views.registry``), or its JSON (the wire model, as the engine sent it).
One module per result family holds its views; ``text`` holds the shared pieces (tables, traffic).
"""

from __future__ import annotations

from caxton.cli.views.registry import Event, Note, as_json, emit_event, emit_json, event, json_text, render, rendered

__all__ = ["Event", "Note", "as_json", "emit_event", "emit_json", "event", "json_text", "render", "rendered"]
