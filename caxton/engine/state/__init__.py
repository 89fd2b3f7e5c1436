"""The engine's durable state: all SQL of the engine's store lives here.

- ``store``: the SQLite store (connection, transactions, agents, revisions,
  blobs, events, the state serial); ``migrations``: its schema.
- ``applies``, ``leases``, ``rollouts``: apply records, the apply lock's row,
  rollout and pin records (saved outside the state serial).
- ``history_db``: the second connection for what the message path writes;
  ``turns`` and ``agent_logs``: conversation turns and agent log lines in it.
- ``storage``: the offline check of a data directory (``caxton storage verify``).

The rest of the engine (orchestration, threads, HTTP) calls these and writes
no SQL, so a second backend (PostgreSQL, issue 14) replaces this package only.
An import contract (pyproject.toml) keeps ``sqlite3`` inside it; the one named
exception is ``caxton.engine.backup``, which copies the database files with
SQLite's online backup API and checks an archive's databases read-only.
"""
