"""The engine's durable state: all SQL of the engine's store lives here, on SQLite or PostgreSQL.

- ``db``: the seam, one small ``Database`` interface with a sqlite3 and a
  psycopg (pool) implementation; the rest writes its SQL once against it.
- ``store``: the store (transactions, agents, revisions, blobs, events, the
  state serial); ``migrations`` / ``migrations_pg``: its schema per backend;
  ``schema``: migrating, the schema version guard and the engines' heartbeats.
- ``applies``, ``leases``, ``rollouts``: apply records, the apply lock's row,
  rollout and pin records (saved outside the state serial).
- ``history_db``: the second connection for what the message path writes;
  ``turns`` and ``agent_logs``: conversation turns and agent log lines in it.
- ``storage``: the offline check of a data directory (``caxton storage verify``).

The rest of the engine (orchestration, threads, HTTP) calls these and writes
no SQL. An import contract (pyproject.toml) keeps ``sqlite3`` inside it and
``psycopg`` inside ``db``; the one named
exception is ``caxton.engine.backup``, which copies the database files with
SQLite's online backup API and checks an archive's databases read-only.
"""
