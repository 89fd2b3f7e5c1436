"""The engine's durable state: all SQL of the engine's store lives here.

``store`` (the SQLite store: connection, transactions, agents, revisions,
blobs, events, the state serial), ``migrations`` (its schema), ``history_db``
(the second connection for conversation turns and agent logs), ``rollouts``
(rollout and pin records), ``applies`` (apply records), ``leases`` (the apply
lock's row) and ``storage`` (the offline ``caxton storage verify``). The rest
of the engine (orchestration, threads, HTTP) calls these and writes no SQL, so
a second backend (PostgreSQL, issue 14) replaces this package only. The one
exception is ``caxton.engine.backup``, which copies the database file with
SQLite's online backup API and checks archives with read-only connections.
"""
