"""Export and import of the memory as JSON lines.

Called by :class:`caxton.memory.service.MemoryService` (``export_jsonl`` /
``import_jsonl``), which the engine's ``/api/v1/memory/export|import`` use.

Format, one JSON object per line:
``{"kind": "header", "format": "caxton-memory", "version": 1, "model": ...}`` (optional on import),
``{"kind": "entity", "name", "entity_type", "observations", "scope", "owner", ...}``,
``{"kind": "relation", "from": {"scope", "owner", "name"}, "to": {...}, "relation_type", "strength"}``.
Vectors are not exported: import re-embeds (same model, same vectors).

Import checks every line (syntax, fields, sizes), conflicts (merge ``error``)
and the entity limits before writing anything, then writes in batches of
``memory.max_batch_size``, one transaction each: a crash mid-import leaves the
batches already committed, each whole, and rerunning with ``update`` or
``skip`` completes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from caxton import errors
from caxton.memory import embeddings, models

if TYPE_CHECKING:
    from caxton.memory.backend import MemoryStore
    from caxton.spec.project import EngineMemorySettings


class MemoryService(Protocol):
    """What export and import need of the memory (``caxton.memory.service.MemoryService`` is it)."""

    @property
    def store(self) -> MemoryStore: ...

    @property
    def settings(self) -> EngineMemorySettings: ...

    def check_import(self, items: Sequence[models.EntityInput], merge: models.Merge) -> None: ...

    def write_batch(self, items: Sequence[models.EntityInput], merge: models.Merge) -> list[models.Entity]: ...

    def relate(self, from_id: int, to_id: int, relation_type: str, strength: float = 1.0) -> models.Relation: ...

FORMAT = "caxton-memory"
VERSION = 1


def _ref(entity: models.Entity) -> dict[str, Any]:
    return {"scope": entity.scope, "owner": entity.owner, "name": entity.name}


def export_jsonl(service: MemoryService, out: TextIO) -> dict[str, int]:
    """Write the header, every entity, then every relation; return the counts."""
    out.write(
        json.dumps(
            {
                "kind": "header",
                "format": FORMAT,
                "version": VERSION,
                "model": embeddings.MODEL_ID,
            }
        )
    )
    out.write("\n")
    by_id: dict[int, dict[str, Any]] = {}
    for entity in service.store.iter_entities():
        record = entity.to_dict()
        del record["id"]
        out.write(json.dumps({"kind": "entity", **record}, ensure_ascii=False) + "\n")
        by_id[entity.id] = _ref(entity)
    relations = 0
    for relation in service.store.iter_relations():
        line = {
            "kind": "relation",
            "from": by_id[relation.from_id],
            "to": by_id[relation.to_id],
            "relation_type": relation.relation_type,
            "strength": relation.strength,
        }
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        relations += 1
    return {"entities": len(by_id), "relations": relations}


Key = tuple[str, str, str]
RelationLine = tuple[int, Key, Key, str, float]


def _parse(lines: Iterable[str]) -> tuple[list[models.EntityInput], list[RelationLine]]:
    entities: list[models.EntityInput] = []
    relations: list[RelationLine] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise errors.InvalidInput(f"import line {number}: not JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise errors.InvalidInput(f"import line {number}: expected a JSON object")
        kind = record.get("kind", "entity")
        if kind == "header":
            _check_header(record, number)
        elif kind == "entity":
            entities.append(models.EntityInput.from_dict(record, where=f"import line {number}"))
        elif kind == "relation":
            relations.append(_relation_line(record, number))
        else:
            raise errors.InvalidInput(f"import line {number}: unknown kind {kind!r}")
    return entities, relations


def _check_header(record: dict[str, Any], number: int) -> None:
    if record.get("format") != FORMAT or record.get("version") != VERSION:
        raise errors.InvalidInput(
            f"import line {number}: not a {FORMAT} v{VERSION} export",
            hint="produce the file with `caxton memory export`",
        )


def _key(ref: Any, number: int) -> Key:
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        raise errors.InvalidInput(f"import line {number}: relation ends need scope, owner and name")
    return models.entity_key(models.check_scope(ref.get("scope", "workspace")), ref.get("owner"), ref["name"])


def import_jsonl(service: MemoryService, lines: Iterable[str], merge: models.Merge) -> models.ImportReport:
    """Merge an export into the memory (see the module docstring for the guarantees)."""
    entities, relations = _parse(lines)
    service.check_import(entities, merge)
    report = models.ImportReport()
    existing = service.store.find_keys(e.key for e in entities)
    step = service.settings.max_batch_size
    for start in range(0, len(entities), step):
        batch = entities[start : start + step]
        service.write_batch(batch, merge)
        for item in batch:
            if item.key not in existing:
                report.created += 1
            elif merge == "skip":
                report.skipped += 1
            else:
                report.updated += 1
    for line in relations:
        _import_relation(service, line, report)
    return report


def _relation_line(record: dict[str, Any], number: int) -> RelationLine:
    relation_type = record.get("relation_type") or record.get("type")
    strength = record.get("strength", 1.0)
    if not isinstance(relation_type, str) or not isinstance(strength, int | float):
        raise errors.InvalidInput(f"import line {number}: relation_type must be a string, strength a number")
    if not 0.0 <= strength <= 1.0:
        raise errors.InvalidInput(f"import line {number}: strength {strength} is outside 0..1")
    return (
        number,
        _key(record.get("from"), number),
        _key(record.get("to"), number),
        relation_type,
        float(strength),
    )


def _import_relation(service: MemoryService, line: RelationLine, report: models.ImportReport) -> None:
    number, from_key, to_key, relation_type, strength = line
    ends = [service.store.find(from_key), service.store.find(to_key)]
    if ends[0] is None or ends[1] is None:
        report.errors.append(f"line {number}: relation end not found; relation skipped")
        return
    service.relate(ends[0].id, ends[1].id, relation_type, strength)
    report.relations += 1
