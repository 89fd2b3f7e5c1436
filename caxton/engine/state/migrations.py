"""Schema migrations of the engine's SQLite store, applied in order and recorded (PostgreSQL: ``migrations_pg``).

Each migration is a name and a SQL script. ``caxton.engine.state.store.Store.open``
applies the ones not yet recorded in the ``migrations`` table, each in its own
transaction, so an old data directory is upgraded in place. Append new
migrations at the end; never edit one that has shipped.
"""

from __future__ import annotations

#: The table recording applied migrations (created before any migration runs).
MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS migrations "
    "(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE NOT NULL, applied_at TEXT NOT NULL)"
)

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_initial",
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        INSERT INTO meta (key, value) VALUES ('serial', '0');

        CREATE TABLE blobs (
            sha256 TEXT PRIMARY KEY,
            kind TEXT NOT NULL,            -- 'spec' or 'module'
            size INTEGER NOT NULL,
            data BLOB NOT NULL
        );

        CREATE TABLE agents (
            id TEXT PRIMARY KEY,           -- kebab-case identity
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            revision INTEGER,              -- revision serving (or last tried when Failed)
            applied_spec_digest TEXT,
            traffic TEXT NOT NULL DEFAULT '{}',
            git_commit TEXT,
            plan_id TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

        CREATE TABLE revisions (
            agent_id TEXT NOT NULL,
            number INTEGER NOT NULL,
            version TEXT NOT NULL,
            spec_sha256 TEXT NOT NULL REFERENCES blobs(sha256),
            module_sha256 TEXT REFERENCES blobs(sha256),
            spec_digest TEXT NOT NULL,
            created_at TEXT NOT NULL,
            actor TEXT,
            plan_id TEXT,
            git_commit TEXT,
            PRIMARY KEY (agent_id, number)
        );

        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            serial INTEGER NOT NULL,
            agent_id TEXT,
            what TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT,
            revision INTEGER,
            message TEXT NOT NULL DEFAULT '',
            actor TEXT,
            plan_id TEXT,
            git_commit TEXT,
            data TEXT
        );
        CREATE INDEX events_agent ON events (agent_id, id);
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        """,
    ),
    (
        "0002_apply_lock_and_applies",
        """
        CREATE TABLE apply_lock (
            id INTEGER PRIMARY KEY CHECK (id = 1),   -- at most one lease
            token TEXT NOT NULL,
            holder TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            expires_at REAL NOT NULL                 -- unix time; an expired lease is free
        );

        CREATE TABLE applies (
            id TEXT PRIMARY KEY,
            plan_id TEXT NOT NULL,
            status TEXT NOT NULL,                    -- running, succeeded, failed, rolled_back, interrupted
            holder TEXT,
            git_commit TEXT,
            submitted_at TEXT NOT NULL,
            finished_at TEXT,
            results TEXT NOT NULL DEFAULT '[]'       -- JSON: one entry per change
        );
        """,
    ),
    (
        "0003_rollouts",
        """
        CREATE TABLE rollouts (
            id TEXT PRIMARY KEY,
            agent_id TEXT NOT NULL,
            status TEXT NOT NULL,                    -- running, paused, succeeded, rolled_back, failed, cancelled
            started_at TEXT NOT NULL,
            finished_at TEXT,
            body TEXT NOT NULL                       -- JSON: the whole rollout (steps, weights, measurements)
        );
        CREATE INDEX rollouts_agent ON rollouts (agent_id, started_at);

        CREATE TABLE rollout_pins (                  -- conversation -> revision, for sticky routing across restarts
            agent_id TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            revision INTEGER NOT NULL,
            PRIMARY KEY (agent_id, conversation_id)
        );
        """,
    ),
    (
        "0004_history",
        """
        CREATE TABLE conversation_turns (            -- config agents' conversations (caxton.engine.serving.conversations)
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            agent_id TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            role TEXT NOT NULL,                      -- user or assistant
            content TEXT NOT NULL,
            at REAL NOT NULL                         -- unix time
        );
        CREATE INDEX conversation_turns_key ON conversation_turns (agent_id, conversation_id, id);
        CREATE INDEX conversation_turns_at ON conversation_turns (at);

        CREATE TABLE agent_logs (                    -- GET /agents/{name}/logs (caxton.engine.logs)
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            agent_id TEXT NOT NULL,
            at TEXT NOT NULL,                        -- ISO 8601 UTC, as the API shows it
            at_unix REAL NOT NULL,
            level TEXT NOT NULL,
            revision INTEGER,
            message TEXT NOT NULL
        );
        CREATE INDEX agent_logs_agent ON agent_logs (agent_id, id);
        CREATE INDEX agent_logs_at ON agent_logs (at_unix);
        """,
    ),
    (
        "0005_tool_turns",
        """
        -- a config agent's tool exchanges in its conversations (OpenAI shape; caxton.llm.conversations):
        -- tool_calls (JSON list) on an assistant turn asking for tools, tool_call_id on a role 'tool' turn
        ALTER TABLE conversation_turns ADD COLUMN tool_calls TEXT;
        ALTER TABLE conversation_turns ADD COLUMN tool_call_id TEXT;
        """,
    ),
    (
        "0006_engines",
        """
        CREATE TABLE engines (                       -- one heartbeat row per running engine (caxton.engine.state.schema)
            id TEXT PRIMARY KEY,                     -- host:pid:start
            caxton_version TEXT NOT NULL,
            schema_version INTEGER NOT NULL,         -- the migrations its code knows
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            last_seen REAL NOT NULL                -- unix time of its last heartbeat
        );
        """,
    ),
    (
        "0007_rollout_samples",
        """
        -- each engine's per-revision samples while a rollout is in flight, summed by the rollout's analysis
        -- (caxton.engine.rollouts.samples); written on PostgreSQL (several engines), empty on SQLite (one engine)
        CREATE TABLE rollout_samples (
            engine_id TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            revision INTEGER NOT NULL,
            bucket INTEGER NOT NULL,                 -- unix second the samples fell in
            requests INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            compared INTEGER NOT NULL,               -- shadow replies compared with the stable one's
            divergent INTEGER NOT NULL,
            latencies TEXT NOT NULL                  -- JSON {histogram bucket: count} (rollouts.histogram)
        );
        CREATE INDEX rollout_samples_key ON rollout_samples (agent_id, revision, bucket);
        CREATE INDEX rollout_samples_bucket ON rollout_samples (bucket);
        """,
    ),
    (
        "0008_apply_engine",
        """
        -- the engine running each apply (its heartbeat row's id in engines) and why an apply ended early:
        -- a live engine marks an unfinished apply of a dead engine interrupted (caxton.engine.replica.orphans)
        ALTER TABLE applies ADD COLUMN engine_id TEXT;
        ALTER TABLE applies ADD COLUMN reason TEXT;
        CREATE INDEX applies_unfinished ON applies (status) WHERE status IN ('running', 'progressing');
        """,
    ),
)
