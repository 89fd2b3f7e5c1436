"""Every Prometheus metric Caxton exports, defined once.

Names follow the seeds where they exist (``docs/metrics.md`` maps them). Modules
import this one and call ``metrics.X.labels(...).inc()``; nothing else creates
metrics. The engine serves ``REGISTRY`` at ``/metrics``.

Counters and histograms are updated where things happen. Gauges that describe
the engine's state (agents by kind and state, the serial, memory entities,
rollouts) are computed at scrape time by ``StateCollector`` from a ``ScrapeView``
the engine gives it (``SCRAPE.source``), so they can never go stale. A
revision's message/error series are created when it starts serving and removed
when it is retired (``forget_revision``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from caxton import __version__

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
BUILD_INFO = Info("caxton_build", "The engine's version.", registry=REGISTRY)
BUILD_INFO.info({"version": __version__})

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# --- server -----------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "caxton_http_requests_total", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"], registry=REGISTRY,
)

RATE_LIMITED = Counter(
    "caxton_rate_limited_total", "API calls refused with 429, per budget (messages, mutations).", ["budget"],
    registry=REGISTRY,
)

# --- agents -----------------------------------------------------------------
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
AGENT_RELOADS = Counter(
    "caxton_agent_reloads_total", "Agent reloads by agent and outcome (success, failure).", ["agent", "outcome"],
    registry=REGISTRY,
)

# --- rollouts ----------------------------------------------------------------------
ROLLOUTS_FINISHED = Counter(
    "caxton_rollouts_finished_total", "Rollouts ended, by agent and final status (succeeded, rolled_back...).",
    ["agent", "status"], registry=REGISTRY,
)
ROLLOUT_VERDICTS = Counter(
    "caxton_rollout_analysis_verdicts_total", "Rollout analysis verdicts (pass, fail, no_data).",
    ["agent", "verdict"], registry=REGISTRY,
)

# --- memory ----------------------------------------------------------------------
MEMORY_SEARCH = Histogram(
    "caxton_memory_search_duration_seconds", "Semantic search latency.", buckets=_LATENCY_BUCKETS, registry=REGISTRY
)


#: The reason a revision's error counter is created with at 0 (the generic message failure), so
#: ``sum by (agent) (rate(caxton_agent_errors_total[5m]))`` is 0, not empty, before the first error.
DEFAULT_ERROR_REASON = "agent_failure"
_PER_REVISION = (AGENT_RESPONSE, AGENT_MESSAGES, WASM_FUEL, WASM_MEMORY, WASM_MEMORY_LIMIT, WASM_RESTARTS)


_serving: dict[tuple[str, str], int] = {}
_serving_lock = threading.Lock()


def serve_revision(agent: str, revision: str) -> None:
    """A runtime of this revision starts serving: its message and error counters exist from now, at 0."""
    with _serving_lock:
        _serving[(agent, revision)] = _serving.get((agent, revision), 0) + 1
        AGENT_MESSAGES.labels(agent, revision)
        AGENT_ERRORS.labels(agent, revision, DEFAULT_ERROR_REASON)


def forget_revision(agent: str, revision: str, reasons: Iterable[str]) -> None:
    """A runtime of this revision is retired: once none is left, remove every series of the revision.

    ``reasons``: the error reasons it counted (``AGENT_ERRORS`` has a child per reason).
    """
    with _serving_lock:
        left = _serving.get((agent, revision), 0) - 1
        if left > 0:
            _serving[(agent, revision)] = left
            return
        _serving.pop((agent, revision), None)
        _remove(agent, revision, reasons)


def _remove(agent: str, revision: str, reasons: Iterable[str]) -> None:
    for metric in _PER_REVISION:
        try:
            metric.remove(agent, revision)
        except KeyError:
            pass
    for reason in {DEFAULT_ERROR_REASON, *reasons}:
        try:
            AGENT_ERRORS.remove(agent, revision, reason)
        except KeyError:
            pass


# --- scrape-time gauges ----------------------------------------------------------------
ROLLOUT_PHASES = ("running", "paused")


@dataclass(frozen=True)
class RolloutView:
    """One in-flight rollout as the gauges show it."""

    agent: str
    strategy: str
    status: str
    step: int
    steps: int
    weights: dict[str, int]


@dataclass(frozen=True)
class ScrapeView:
    """The engine's state at one scrape (``Engine.scrape_view``)."""

    agents: dict[tuple[str, str], int]
    serial: int
    uptime_seconds: float
    memory_entities: int | None = None
    memory_sqlite_bytes: int | None = None
    rollouts: list[RolloutView] = field(default_factory=list)


class StateCollector:
    """Gauges computed from a ``ScrapeView`` at every scrape; nothing when no engine runs."""

    def __init__(self) -> None:
        self.source: Callable[[], ScrapeView] | None = None

    def describe(self) -> list[Metric]:
        return []  # names are only known at collect time: the registry must not cache them

    def collect(self) -> Iterator[Metric]:
        source = self.source
        if source is None:
            return
        view = source()
        yield _gauge("caxton_server_uptime_seconds", "Seconds since the engine started.", view.uptime_seconds)
        yield _gauge("caxton_state_serial", "The engine's state serial (as /api/v1/state).", view.serial)
        by = GaugeMetricFamily("caxton_agents", "Agents held by the engine, by kind and state (states as the API shows them: Running, Failed...).",
                               labels=["kind", "state"])
        for (kind, state), n in sorted(view.agents.items()):
            by.add_metric([kind, state], n)
        yield by
        if view.memory_entities is not None:
            yield _gauge("caxton_memory_entities", "Entities in memory.", view.memory_entities)
        if view.memory_sqlite_bytes is not None:
            yield _gauge("caxton_memory_sqlite_size_bytes", "Size of the memory database.", view.memory_sqlite_bytes)
        yield from _rollouts(view.rollouts)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _rollouts(rollouts: list[RolloutView]) -> Iterator[Metric]:
    phase = GaugeMetricFamily("caxton_rollout_phase", "1 for the phase an agent's in-flight rollout is in.",
                              labels=["agent", "strategy", "phase"])
    step = GaugeMetricFamily("caxton_rollout_step", "The step (from 0) of an agent's in-flight rollout.",
                             labels=["agent", "strategy"])
    steps = GaugeMetricFamily("caxton_rollout_steps", "Steps of an agent's in-flight rollout.",
                              labels=["agent", "strategy"])
    weight = GaugeMetricFamily("caxton_rollout_weight_percent", "Share of new conversations per revision.",
                               labels=["agent", "revision"])
    for r in rollouts:
        for name in ROLLOUT_PHASES:
            phase.add_metric([r.agent, r.strategy, name], 1 if r.status == name else 0)
        step.add_metric([r.agent, r.strategy], r.step)
        steps.add_metric([r.agent, r.strategy], r.steps)
        for revision, share in sorted(r.weights.items()):
            weight.add_metric([r.agent, revision], share)
    yield from (phase, step, steps, weight)


SCRAPE = StateCollector()
REGISTRY.register(SCRAPE)  # type: ignore[arg-type]  # structural Collector
