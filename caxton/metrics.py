"""Every Prometheus metric Caxton exports, defined once.

Names follow the seeds where they exist. Modules import this one and call
``metrics.X.labels(...).inc()``; nothing else creates metrics. The engine
serves ``REGISTRY`` at ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# --- server -----------------------------------------------------------------
SERVER_UPTIME = Gauge("caxton_server_uptime_seconds", "Seconds since the engine started.", registry=REGISTRY)
STATE_SERIAL = Gauge("caxton_state_serial", "The engine's state serial.", registry=REGISTRY)

RATE_LIMITED = Counter(
    "caxton_rate_limited_total", "API calls refused with 429, per budget (messages, mutations).", ["budget"],
    registry=REGISTRY,
)

# --- agents -----------------------------------------------------------------
AGENTS_CONFIG = Gauge("caxton_agents_config_total", "Config agents held by the engine.", registry=REGISTRY)
AGENTS_WASM = Gauge("caxton_agents_wasm_total", "WASM agents held by the engine.", registry=REGISTRY)
AGENTS_FAILED = Gauge("caxton_agents_failed_total", "Agents in the Failed state.", registry=REGISTRY)
AGENT_RESPONSE = Histogram(
    "caxton_agent_response_duration_seconds",
    "Time to answer one message.",
    ["agent", "revision"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
AGENT_MESSAGES = Counter(
    "caxton_agent_messages_total", "Messages handled.", ["agent", "revision"], registry=REGISTRY
)
AGENT_ERRORS = Counter(
    "caxton_agent_errors_total", "Messages that failed.", ["agent", "revision", "reason"], registry=REGISTRY
)

# --- wasm sandbox -------------------------------------------------------------
WASM_FUEL = Counter("caxton_wasm_fuel_consumed_total", "Fuel consumed.", ["agent", "revision"], registry=REGISTRY)
WASM_MEMORY = Gauge("caxton_wasm_memory_bytes", "Linear memory in use.", ["agent", "revision"], registry=REGISTRY)
WASM_MEMORY_LIMIT = Gauge(
    "caxton_wasm_memory_limit_bytes", "Linear memory limit.", ["agent", "revision"], registry=REGISTRY
)
WASM_RESTARTS = Counter(
    "caxton_wasm_agent_restarts_total", "Sandbox instance restarts.", ["agent", "revision"], registry=REGISTRY
)
WASM_VIOLATIONS = Counter(
    "caxton_wasm_security_violations_total",
    "Limit or policy violations (fuel, timeout, memory, imports).",
    ["agent", "kind"],
    registry=REGISTRY,
)

# --- reconcile / reloads -------------------------------------------------------
RECONCILE_RUNS = Counter("caxton_reconcile_runs_total", "Reconcile passes.", ["outcome"], registry=REGISTRY)
RECONCILE_LAST_SUCCESS = Gauge(
    "caxton_reconcile_last_success_timestamp_seconds", "Unix time of the last good pass.", registry=REGISTRY
)
RECONCILE_DURATION = Histogram(
    "caxton_reconcile_duration_seconds", "Duration of a reconcile pass.", registry=REGISTRY
)
CONFIG_RELOADS = Counter("caxton_config_reloads_total", "Agent reloads (new revisions).", registry=REGISTRY)
CONFIG_RELOAD_FAILURES = Counter(
    "caxton_config_reload_failures_total", "Agent reloads that failed.", registry=REGISTRY
)

# --- memory ----------------------------------------------------------------------
MEMORY_ENTITIES = Gauge("caxton_memory_entities_total", "Entities in memory.", registry=REGISTRY)
MEMORY_SEARCH = Histogram(
    "caxton_memory_search_duration_seconds", "Semantic search latency.", buckets=_LATENCY_BUCKETS, registry=REGISTRY
)
MEMORY_SQLITE_SIZE = Gauge("caxton_memory_sqlite_size_bytes", "Size of the memory database.", registry=REGISTRY)
