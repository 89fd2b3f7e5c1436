"""The memory facade the engine uses: entities, relations, search, limits, health.

The engine creates one ``MemoryService(path, settings)`` at start when
``memory.enabled`` and calls it from API handlers and the config-agent runtime
(worker threads: every method is thread-safe). Opening never raises for a bad
model file: the error is logged once, :meth:`health` reports it, and the
methods that need embeddings raise :class:`caxton.errors.Unavailable` while
reads, export and delete keep working. A database that cannot be opened does
raise (Unavailable) from the constructor.

Storage: ``caxton.memory.backend`` (SQLite + sqlite-vec in the data directory
with an in-memory search index, or PostgreSQL + pgvector searched in the database).

Write path: validate and check sizes -> embed (no lock held) -> one database
transaction (limits and conflicts checked inside it, writers serialised) ->
apply to the search index while still holding the store lock, so the index
sees writes in commit order (a no-op on PostgreSQL: the index is the table's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from caxton import errors, metrics
from caxton.spec import health as vocabulary
from caxton.memory import (
    backend,
    context,
    embeddings,
    index,
    limits,
    models,
    schema,
    transfer,
)

if TYPE_CHECKING:
    from caxton.spec.project import EngineMemorySettings

log = logging.getLogger("caxton.memory")

Key = tuple[str, str, str]
MAX_K = 100
MAX_DEPTH = 5
MAX_GRAPH_NODES = 1000
META_MODEL = "model_sha256"


class MemoryService:
    """Entities, relations and semantic search over one database (a SQLite file or a PostgreSQL URL)."""

    def __init__(
        self,
        location: Path | str,
        settings: EngineMemorySettings,
        *,
        embedder: embeddings.Embedder | None = None,
        load_model: bool = True,
    ) -> None:
        self.settings = settings
        self._agent_limits: dict[str, int] = {}
        self._error: errors.CaxtonError | None = None
        self._model_lock = threading.Lock()
        self.embedder = embedder
        self.store: backend.MemoryStore = backend.open_store(location)
        self.index: backend.SearchIndex = self.store.open_index()
        if load_model:
            self._load_model()

    # --- lifecycle and health -------------------------------------------------------------

    def warm_up(self) -> None:
        """Check the model files now (the engine calls this at start): a missing or corrupted
        model is reported at once; the ONNX session itself loads on first use."""
        self._load_model(session=False)

    def _load_model(self, *, session: bool = True) -> None:
        with self._model_lock:
            try:
                if self.embedder is None:
                    self.embedder = embeddings.Embedder(
                        embeddings.locate(self.settings.model_path, self.settings.tokenizer_path)
                    )
                if session:
                    self.embedder.load()
                else:
                    self.embedder.verify()
            except errors.CaxtonError as exc:
                self._error = exc
                log.error("memory unavailable: %s", exc)

    def close(self) -> None:
        self.store.close()

    def set_agent_limits(self, limits: Mapping[str, int | None]) -> None:
        """The engine passes each agent's ``resource_limits.max_memory_entities`` (None: no limit)."""
        self._agent_limits = {agent: limit for agent, limit in limits.items() if limit is not None}

    def set_agent_limit(self, agent: str, limit: int | None) -> None:
        """Set (or, with None, lift) one agent's entity limit; called when it is deployed."""
        if limit is None:
            self._agent_limits.pop(agent, None)
        else:
            self._agent_limits[agent] = limit

    def _embedder(self) -> embeddings.Embedder:
        if self._error is not None:
            raise errors.Unavailable(f"memory unavailable: {self._error.message}", hint=self._error.hint)
        if self.embedder is None:
            self._load_model()
            return self._embedder()
        return self.embedder

    def _stale_vectors(self) -> bool:
        stored = self.store.meta(META_MODEL)
        current = self.embedder.model_sha256 if self.embedder else None
        return bool(stored and current and stored != current)

    def health(self) -> dict[str, Any]:
        """Model, entity count, backend and ``status``: healthy, degraded (vectors from another model: reindex)
        or unhealthy (the model cannot be loaded, or the database does not answer: searches and writes fail)."""
        out: dict[str, Any] = {
            "status": vocabulary.HEALTHY,
            "enabled": True,
            "model": embeddings.MODEL_ID,
            "model_path": str(self.embedder.files.model) if self.embedder else None,
            "model_sha256": self.embedder.model_sha256 if self.embedder else None,
            "entities": None,
            "database": self.store.location,
            "backend": self.store.backend,
        }
        try:
            out.update(self.store.health(), entities=self.store.count())
            stale = self._stale_vectors()
        except errors.Unavailable as exc:
            return out | {"status": vocabulary.UNHEALTHY, "message": exc.message, "hint": exc.hint}
        if self._error is not None:
            out.update(status=vocabulary.UNHEALTHY, message=self._error.message, hint=self._error.hint)
        elif stale:
            out.update(
                status=vocabulary.DEGRADED,
                message="vectors were built with another model file",
                hint="run `caxton memory reindex`",
            )
        return out

    # --- entities -------------------------------------------------------------------------

    def get_entity(self, entity_id: int) -> models.Entity:
        entity = self.store.get(entity_id)
        if entity is None:
            raise errors.NotFound(f"memory entity {entity_id} not found")
        return entity

    def list_entities(
        self,
        *,
        name: str | None = None,
        scopes: Sequence[str] | None = None,
        owner: str | None = None,
        entity_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[models.Entity]:
        for scope in scopes or ():
            models.check_scope(scope)
        limit = max(1, min(limit, 1000))
        return self.store.select(
            name=name,
            scopes=scopes,
            owner=owner,
            entity_type=entity_type,
            limit=limit,
            offset=max(0, offset),
        )

    def lookup(self, name: str, *, scope: str | None = None, owner: str | None = None) -> list[models.Entity]:
        """Exact lookup by name (names are unique per scope, and per owner in ``agent`` scope)."""
        return self.list_entities(name=name, scopes=[scope] if scope else None, owner=owner)

    def create_entity(self, item: models.EntityInput) -> models.Entity:
        return self.create_entities([item])[0]

    def create_entities(
        self, items: Sequence[models.EntityInput], merge: models.Merge = "error"
    ) -> list[models.Entity]:
        """Store a batch atomically (all or nothing); ``merge`` decides what an existing name does."""
        if len(items) > self.settings.max_batch_size:
            raise errors.PayloadTooLarge(
                f"batch of {len(items)} entities; the limit is {self.settings.max_batch_size}",
                hint="send smaller batches or raise memory.max_batch_size in caxton.yaml",
            )
        return self.write_batch(items, merge)

    def write_batch(self, items: Sequence[models.EntityInput], merge: models.Merge) -> list[models.Entity]:
        """Validate, embed and store ``items`` in one transaction (no batch-size check)."""
        models.check_merge(merge)
        limits.check_batch(items, self.settings.max_observation_size)
        vectors = self._embed_items(items, merge)
        ids: list[int] = []
        with self.store.lock:
            with self.store.write():
                existing = self.store.find_keys(i.key for i in items)
                limits.check_quotas(self.store, self.settings.max_entities, self._agent_limits, items, existing, merge)
                for item in items:
                    ids.append(self._write_one(item, existing.get(item.key), vectors.get(item.key), merge))
                self._mark_model()
            for item, entity_id in zip(items, ids, strict=True):
                if entity_id > 0:
                    self.index.upsert(
                        entity_id,
                        item.scope,
                        item.owner,
                        item.entity_type,
                        vectors[item.key],
                    )
        stored = self.store.get_many([abs(i) for i in ids])
        return [stored[abs(i)] for i in ids]

    def check_import(self, items: Sequence[models.EntityInput], merge: models.Merge) -> None:
        """Everything an import can fail on, checked before its first batch is written."""
        limits.check_batch(items, self.settings.max_observation_size)
        existing = self.store.find_keys(i.key for i in items)
        limits.check_quotas(self.store, self.settings.max_entities, self._agent_limits, items, existing, merge)

    def _embed_items(self, items: Sequence[models.EntityInput], merge: models.Merge) -> dict[Key, Any]:
        """Vectors by entity key; with ``skip``, names that already exist are not embedded."""
        if merge == "skip":
            present = self.store.find_keys(i.key for i in items)
            items = [i for i in items if i.key not in present]
        if not items:
            return {}
        vectors = self._embedder().embed_batch(
            [context.embedding_text(i.name, i.entity_type, i.observations) for i in items]
        )
        return {item.key: vector for item, vector in zip(items, vectors, strict=True)}

    def _write_one(
        self,
        item: models.EntityInput,
        found: models.Entity | None,
        vector: Any,
        merge: models.Merge,
    ) -> int:
        """Insert or update one row; returns its id, negated when nothing changed (skip)."""
        ts = schema.now()
        if found is not None and merge == "skip":
            return -found.id
        if vector is None:  # skipped at embedding time, deleted since: still a skip
            raise errors.Conflict(f"memory entity {item.name!r} changed during the import; run it again")
        if found is None:
            return self.store.insert_entity(item, vector.tobytes(), ts)
        self.store.replace_entity(found.id, item.entity_type, item.observations, vector.tobytes(), ts)
        return found.id

    def _mark_model(self) -> None:
        sha = self.embedder.model_sha256 if self.embedder else None
        if sha and self.store.meta(META_MODEL) is None:
            self.store.set_meta(META_MODEL, sha)

    def update_entity(
        self,
        entity_id: int,
        *,
        entity_type: str | None = None,
        observations: Sequence[str] | None = None,
        add_observations: Sequence[str] = (),
        expected_version: int | None = None,
        keep_last: int | None = None,
    ) -> models.Entity:
        """Replace the type/observations and/or append observations; re-embeds the entity."""
        current = self.get_entity(entity_id)
        new_obs = list(current.observations if observations is None else observations) + list(add_observations)
        if keep_last is not None:
            new_obs = new_obs[-keep_last:]
        new_type = entity_type or current.entity_type
        models.check_input(
            models.EntityInput(current.name, new_type, tuple(new_obs), current.scope, current.owner),
            self.settings.max_observation_size,
        )
        vector = self._embedder().embed(context.embedding_text(current.name, new_type, new_obs))
        with self.store.lock:
            with self.store.write():
                latest = self.get_entity(entity_id)
                if expected_version is not None and latest.version != expected_version:
                    raise errors.Conflict(
                        f"memory entity {entity_id} is at version {latest.version}, not {expected_version}",
                        hint="re-read the entity and retry",
                    )
                if observations is None and latest.version != current.version:
                    new_obs = list(latest.observations) + list(add_observations)  # appended concurrently
                    new_obs = new_obs[-keep_last:] if keep_last is not None else new_obs
                self.store.replace_entity(entity_id, new_type, new_obs, vector.tobytes(), schema.now())
            self.index.upsert(entity_id, current.scope, current.owner, new_type, vector)
        return self.get_entity(entity_id)

    def delete_entity(self, entity_id: int) -> None:
        """Delete the entity, its vector and its relations in one transaction."""
        with self.store.lock:
            with self.store.write():
                if not self.store.delete_entity(entity_id):
                    raise errors.NotFound(f"memory entity {entity_id} not found")
            self.index.remove(entity_id)

    # --- relations and graph --------------------------------------------------------------------

    def relate(self, from_id: int, to_id: int, relation_type: str, strength: float = 1.0) -> models.Relation:
        """Create the relation, or update the strength of the existing (from, to, type) one."""
        if not relation_type.strip() or len(relation_type) > models.MAX_TYPE_LENGTH:
            raise errors.InvalidInput(f"relation_type must be 1-{models.MAX_TYPE_LENGTH} characters")
        if not 0.0 <= strength <= 1.0:
            raise errors.InvalidInput(f"strength {strength} is outside 0..1")
        with self.store.write():
            for entity_id in (from_id, to_id):
                self.get_entity(entity_id)
            relation_id = self.store.upsert_relation(from_id, to_id, relation_type, strength, schema.now())
        relation = self.store.get_relation(relation_id)
        assert relation is not None
        return relation

    def relations(self, entity_id: int | None = None) -> list[models.Relation]:
        if entity_id is None:
            return list(self.store.iter_relations())
        return self.store.relations_touching([entity_id])

    def delete_relation(self, relation_id: int) -> None:
        with self.store.write():
            if not self.store.delete_relation(relation_id):
                raise errors.NotFound(f"memory relation {relation_id} not found")

    def neighbours(self, entity_id: int, depth: int = 1) -> models.Graph:
        """Entities reachable from ``entity_id`` over relations (either direction) within ``depth``."""
        if not 1 <= depth <= MAX_DEPTH:
            raise errors.InvalidInput(f"depth must be 1-{MAX_DEPTH}")
        start = self.get_entity(entity_id)
        seen, frontier, walked = {start.id}, [start.id], {}
        for _ in range(depth):
            found = self.store.relations_touching(frontier)
            walked.update({r.id: r for r in found})
            frontier = [n for r in found for n in (r.from_id, r.to_id) if n not in seen]
            seen.update(frontier)
            if not frontier or len(seen) >= MAX_GRAPH_NODES:
                break
        entities = self.store.get_many(sorted(seen)[:MAX_GRAPH_NODES])
        return models.Graph(tuple(entities.values()), tuple(walked.values()))

    # --- search ---------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 10,
        min_similarity: float | None = None,
        types: Sequence[str] | None = None,
        scopes: Sequence[str] | None = None,
        agent: str | None = None,
    ) -> list[models.SearchHit]:
        """Top ``k`` entities by cosine similarity to ``query`` (higher is closer).

        ``agent``: search as that agent (other agents' private entities are hidden).
        """
        if not 1 <= k <= MAX_K:
            raise errors.InvalidInput(f"k must be 1-{MAX_K}")
        for scope in scopes or ():
            models.check_scope(scope)
        started = time.perf_counter()
        vector = self._embedder().embed(query)
        where = index.Filter(scopes=scopes, types=types, agent=agent)
        found = [
            (i, s) for i, s in self.index.search(vector, k, where) if min_similarity is None or s >= min_similarity
        ]
        entities = self.store.get_many([i for i, _ in found])
        metrics.MEMORY_SEARCH.observe(time.perf_counter() - started)
        return [models.SearchHit(entities[i], s) for i, s in found if i in entities]

    # --- config agents -------------------------------------------------------------------------

    def context_for(self, agent: str, scope: str, query: str, k: int, min_similarity: float) -> str:
        """Rendered ``memory_context`` for one request of ``agent`` (empty when nothing matches)."""
        hits = self.search(query, k, min_similarity, scopes=models.visible_scopes(scope), agent=agent)
        return context.render(hits)

    def remember(
        self, agent: str, scope: str, conversation_id: str | None, request: str, response: str
    ) -> models.Entity:
        """Record the exchange as an observation on the agent's conversation entity.

        Messages without a conversation id share one entity per agent (``conversation:<agent>:-``).
        """
        observation = context.exchange(request, response, self.settings.max_observation_size)
        return self._observe(agent, scope, context.conversation_name(agent, conversation_id),
                             context.CONVERSATION_TYPE, [observation], keep_last=context.KEEP_EXCHANGES)

    def _observe(self, agent: str, scope: str, name: str, entity_type: str, observations: Sequence[str], *,
                 keep_last: int | None = None) -> models.Entity:
        """Add ``observations`` to ``agent``'s entity ``name`` at ``scope`` (created with ``entity_type`` if new;
        ``keep_last``: only the newest that many kept)."""
        scope = models.check_scope(scope)
        found = self.store.find(models.entity_key(scope, agent, name))
        if found is not None:
            return self.update_entity(found.id, add_observations=list(observations), keep_last=keep_last)
        item = models.EntityInput(name, entity_type, tuple(observations), scope, agent)
        return self.write_batch([item], "update")[0]

    # --- tools (caxton.llm.tools: memory_search, memory_store) -------------------------------

    def recall(self, agent: str, scope: str, query: str, k: int, min_similarity: float) -> list[dict[str, Any]]:
        """``memory_search`` of ``agent``: the entities it can see (its ``memory.scope``), closest first."""
        hits = self.search(query, k, min_similarity, scopes=models.visible_scopes(scope), agent=agent)
        return [{"name": h.entity.name, "type": h.entity.entity_type, "observations": list(h.entity.observations),
                 "scope": h.entity.scope, "similarity": round(h.similarity, 6)} for h in hits]

    def note(self, agent: str, scope: str, name: str, entity_type: str, observations: Sequence[str]) -> dict[str, Any]:
        """``memory_store`` of ``agent``: add observations to its entity ``name`` (created if new) at ``scope``."""
        entity = self._observe(agent, scope, name, entity_type, observations)
        return {"id": entity.id, "name": entity.name, "type": entity.entity_type, "scope": entity.scope,
                "observations": len(entity.observations), "version": entity.version}

    # --- maintenance --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        count = self.store.count()
        size = self.store.size_bytes()
        return {
            "entities": count,
            "vectors": self.store.vector_count(),
            "relations": self.store.relation_count(),
            "max_entities": self.settings.max_entities,
            "by_scope": self.store.counts_by("scope"),
            "by_type": self.store.counts_by("entity_type"),
            "by_owner": self.store.counts_by("owner"),
            "backend": self.store.backend,
            "sqlite_size_bytes": size,
            "bytes_per_entity": round(size / count) if count else None,
            "index": {
                "rows": len(self.index),
                "mode": self._index_mode(),
            },
            "model": embeddings.MODEL_ID,
            "migrations": self.store.migrations(),
            "status": self.health()["status"],
        }

    def gauges(self) -> tuple[int | None, int | None]:
        """(entities searchable, database bytes) for the scrape gauges; None while the database does not answer."""
        try:
            return len(self.index), self.store.size_bytes()
        except errors.Unavailable:
            return None, None

    def _index_mode(self) -> str:
        if self.store.backend == "postgres":
            return "pgvector-hnsw"
        return "pca+rescore" if self.index.approximate else "exact"

    def vacuum(self) -> dict[str, int]:
        before = self.store.size_bytes()
        self.store.vacuum()
        after = self.store.size_bytes()
        return {"size_before_bytes": before, "size_after_bytes": after}

    def reindex(self, batch: int = 256) -> dict[str, Any]:
        """Re-embed every entity with the current model and rebuild the index."""
        embedder = self._embedder()
        started, done = time.perf_counter(), 0
        page: list[models.Entity] = []
        for entity in self.store.iter_entities():
            page.append(entity)
            if len(page) >= batch:
                done += self._reembed(embedder, page)
                page = []
        done += self._reembed(embedder, page)
        with self.store.lock:
            with self.store.write():
                self.store.set_meta(META_MODEL, embedder.model_sha256 or "")
            self.index = self.store.open_index()
        return {
            "entities": done,
            "seconds": round(time.perf_counter() - started, 3),
            "health": self.health(),
        }

    def _reembed(self, embedder: embeddings.Embedder, page: Sequence[models.Entity]) -> int:
        if not page:
            return 0
        texts = [context.embedding_text(e.name, e.entity_type, e.observations) for e in page]
        vectors = embedder.embed_batch(texts)
        with self.store.write():
            for entity, vector in zip(page, vectors, strict=True):
                self.store.set_vector(entity.id, vector.tobytes())
        return len(page)

    def export_jsonl(self, out: TextIO) -> dict[str, int]:
        return transfer.export_jsonl(self, out)

    def import_jsonl(self, lines: Iterable[str], merge: str = "update") -> models.ImportReport:
        return transfer.import_jsonl(self, lines, models.check_merge(merge))

