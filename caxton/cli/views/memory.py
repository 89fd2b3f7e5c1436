"""Views of ``caxton memory``: stats with the model's health, search hits, a stored entity, import/vacuum/reindex."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from caxton.cli.views.registry import Note, text_view
from caxton.cli.views.text import megabytes

if TYPE_CHECKING:
    from caxton.spec.api import Entity, ImportReport, MemoryStats, ReindexReport, SearchResults, VacuumReport


@text_view("MemoryStats")
def stats_text(result: MemoryStats) -> Iterator[str]:
    health = result.health
    assert health is not None, "stats are rendered with the memory's health"
    yield f"memory: {health.status}  model {health.model}"
    if health.message:
        yield f"  problem: {health.message}" + (f" (hint: {health.hint})" if health.hint else "")
    yield f"  entities {result.entities:,} / {result.max_entities or 0:,}  relations {result.relations:,}"
    yield f"  database {megabytes(result.sqlite_size_bytes)} MB ({result.bytes_per_entity or 0} bytes/entity)"
    yield f"  index {result.index.rows:,} rows ({result.index.mode})"
    for key, counts in (("by_scope", result.by_scope), ("by_type", result.by_type)):
        if counts:
            yield f"  {key.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


@text_view("SearchResults")
def search_text(result: SearchResults) -> Iterator[str]:
    if not result.results:
        yield "no matching entities"
    for hit in result.results:
        owner = f" owner={hit.owner}" if hit.owner else ""
        yield f"{hit.similarity:.3f}  #{hit.id} {hit.name} ({hit.entity_type}, {hit.scope}{owner})"
        for observation in hit.observations[-2:]:
            yield "       " + _short(observation)


def _short(text: str, width: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


@text_view("Entity")
def stored_text(stored: Entity) -> list[str]:
    return [f"stored #{stored.id} {stored.name} ({stored.entity_type}, {stored.scope}) v{stored.version}"]


@text_view("ImportReport")
def import_text(report: ImportReport) -> Iterator[str]:
    yield (f"imported: {report.created} created, {report.updated} updated, {report.skipped} skipped, "
           f"{report.relations} relations")
    for problem in report.errors:
        yield Note(f"warning: {problem}")


@text_view("VacuumReport")
def vacuum_text(result: VacuumReport) -> list[str]:
    return [f"vacuumed: {megabytes(result.size_before_bytes)} -> {megabytes(result.size_after_bytes)} MB"]


@text_view("ReindexReport")
def reindex_text(result: ReindexReport) -> list[str]:
    return [f"reindexed {result.entities} entities in {result.seconds} s"]
