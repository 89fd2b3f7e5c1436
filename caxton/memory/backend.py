"""The memory's storage interface and how a location picks its implementation.

Two implementations: :class:`caxton.memory.store.Store` (SQLite + sqlite-vec in
the data directory, searched through the in-memory :mod:`caxton.memory.index`;
the default) and :class:`caxton.memory.pgstore.PgStore` (PostgreSQL + pgvector,
searched in the database, shared by every engine on it).
The service, limits and transfer use only what :class:`MemoryStore` says.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from caxton import errors
from caxton.memory import models

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np
    import numpy.typing as npt

    from caxton.memory.index import Filter
    from caxton.spec.project import EngineMemorySettings

Key = tuple[str, str, str]
#: Where ``memory.backend: postgres`` finds its database when ``memory.url`` is not set (shared with the store).
STORE_URL_ENV = "CAXTON_STORE_URL"


class SearchIndex(Protocol):
    """Where searches go: the in-memory index (SQLite) or the database's own (pgvector)."""

    @property
    def approximate(self) -> bool: ...

    def __len__(self) -> int: ...

    def upsert(self, entity_id: int, scope: str, owner: str | None, entity_type: str,
               vector: npt.NDArray[np.float32]) -> None: ...

    def remove(self, entity_id: int) -> None: ...

    def search(self, query: npt.NDArray[np.float32], k: int,
               where: Filter | None = None) -> list[tuple[int, float]]: ...


class MemoryStore(Protocol):
    """Entities, relations, vectors and metadata in one database.

    Mutations happen inside :meth:`write` (one transaction, writers serialised:
    reads inside it see its own writes); ``lock`` serialises this process's writers.
    """

    lock: threading.RLock
    #: ``sqlite`` or ``postgres``.
    backend: str
    #: Where the data is, safe to print (a file path, or a URL without its password).
    location: str

    def close(self) -> None: ...

    def write(self) -> AbstractContextManager[None]: ...

    def open_index(self) -> SearchIndex: ...

    def insert_entity(self, item: models.EntityInput, vector: bytes, ts: str) -> int: ...

    def replace_entity(self, entity_id: int, entity_type: str, observations: Sequence[str], vector: bytes,
                       ts: str) -> None: ...

    def set_vector(self, entity_id: int, vector: bytes) -> None: ...

    def delete_entity(self, entity_id: int) -> bool: ...

    def get(self, entity_id: int) -> models.Entity | None: ...

    def get_many(self, ids: Sequence[int]) -> dict[int, models.Entity]: ...

    def find(self, key: Key) -> models.Entity | None: ...

    def find_keys(self, keys: Iterable[Key]) -> dict[Key, models.Entity]: ...

    def select(self, *, name: str | None = None, scopes: Sequence[str] | None = None, owner: str | None = None,
               entity_type: str | None = None, limit: int = 100, offset: int = 0) -> list[models.Entity]: ...

    def iter_entities(self, batch: int = 1000) -> Iterator[models.Entity]: ...

    def count(self, owner: str | None = None) -> int: ...

    def counts_by(self, column: str) -> dict[str, int]: ...

    def vector_count(self) -> int: ...

    def upsert_relation(self, from_id: int, to_id: int, relation_type: str, strength: float, ts: str) -> int: ...

    def delete_relation(self, relation_id: int) -> bool: ...

    def get_relation(self, relation_id: int) -> models.Relation | None: ...

    def relations_touching(self, ids: Sequence[int]) -> list[models.Relation]: ...

    def iter_relations(self) -> Iterator[models.Relation]: ...

    def relation_count(self) -> int: ...

    def meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def migrations(self) -> list[str]: ...

    def size_bytes(self) -> int: ...

    def vacuum(self) -> None: ...

    def integrity(self) -> str: ...

    def health(self) -> dict[str, object]: ...


def is_url(location: Path | str) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def open_store(location: Path | str) -> MemoryStore:
    """The store at ``location``: a ``postgresql://`` URL, else a SQLite file path."""
    if is_url(location):
        from caxton.memory.pgstore import PgStore

        return PgStore(str(location))
    from caxton.memory.store import Store

    return Store(Path(location))


def location(settings: EngineMemorySettings, data_dir: Path, store_url: str | None) -> Path | str:
    """Where the configured memory lives: the SQLite file, or the PostgreSQL URL (``memory.url``, else the
    state store's ``store.url`` / ``CAXTON_STORE_URL``)."""
    if settings.backend != "postgres":
        return data_dir / settings.sqlite_path
    url = settings.url or store_url or ""
    if not is_url(url):
        raise errors.InvalidInput(
            "memory.backend is postgres but no PostgreSQL URL is set"
            + (" (store.url is not a postgresql:// URL)" if url else ""),
            hint=f"set memory.url: postgresql://USER:PASSWORD@HOST/DB in caxton.yaml (or store.url / {STORE_URL_ENV}), "
            "or memory.backend: sqlite",
        )
    return url
