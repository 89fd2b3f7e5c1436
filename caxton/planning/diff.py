"""Field-level differences between two agent specs, computed with deepdiff."""

from __future__ import annotations

from typing import Any

from caxton.rules import redact
from caxton.spec.plan import SENSITIVE, FieldChange

_OPS = {
    "dictionary_item_added": "add",
    "iterable_item_added": "add",
    "attribute_added": "add",
    "dictionary_item_removed": "remove",
    "iterable_item_removed": "remove",
    "attribute_removed": "remove",
    "values_changed": "change",
    "type_changes": "change",
}


def format_path(path: list[str | int]) -> str:
    """``['tools', 2]`` -> ``tools[2]``; ``['llm', 'model']`` -> ``llm.model``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def _present(value: Any) -> Any:
    from deepdiff.helper import NotPresent

    return None if isinstance(value, NotPresent) else value


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    """Every difference from ``before`` to ``after``, sorted by path, secrets redacted."""
    from deepdiff import DeepDiff

    diff = DeepDiff(before, after, verbose_level=2)
    changes: list[FieldChange] = []
    for kind, levels in diff.tree.items():
        op = _OPS.get(kind)
        if op is None:
            continue
        for level in levels:
            path: list[str | int] = list(level.path(output_format="list"))
            old, new = _present(level.t1), _present(level.t2)
            sensitive = redact.is_sensitive(path, old) or redact.is_sensitive(path, new)
            changes.append(
                FieldChange(
                    path=format_path(path),
                    op=op,  # type: ignore[arg-type]
                    before=SENSITIVE if sensitive and old is not None else old,
                    after=SENSITIVE if sensitive and new is not None else new,
                    sensitive=sensitive,
                )
            )
    return sorted(changes, key=lambda c: c.path)


def redact_spec(spec: dict[str, Any]) -> list[FieldChange]:
    """A created or deleted agent shown as field additions (used for create/delete detail)."""
    return field_changes({}, spec)
