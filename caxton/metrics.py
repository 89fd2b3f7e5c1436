"""Every Prometheus metric Caxton exports, defined once.

Names follow the seeds where they exist (``docs/metrics.md`` maps them). Modules
import this one and call ``metrics.X.labels(...).inc()``; nothing else creates
metrics. The engine serves ``exposition()`` at ``/metrics``.

Counters and histograms are updated where things happen. Gauges that describe
the engine's state (agents by kind and state, the serial, memory entities and
their limit, rollouts, the last good backup) are computed at scrape time by ``StateCollector`` from a ``ScrapeView``
the engine gives it (``SCRAPE.source``), so they can never go stale. A
revision's message, error, response-time and WASM sandbox series (``RevisionSeries``,
``WasmSeries``) are created at 0 when it
starts serving (``serve_revision``) and removed when it is retired
(``forget_revision``); they are rendered by ``render_revisions``, not the
registry (the speed of a scrape at 1,000 agents). ``exposition()`` is the
whole ``/metrics`` body.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from caxton import __version__

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: half the samples, nothing the seeds' queries use
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
# caxton_agent_response_duration_seconds, caxton_agent_messages_total and caxton_agent_errors_total
# are per serving revision: ``RevisionSeries`` below (rendered by ``render_revisions``, not the registry).

# --- wasm sandbox -------------------------------------------------------------
# caxton_wasm_fuel_consumed_total, caxton_wasm_memory_bytes, caxton_wasm_memory_limit_bytes and
# caxton_wasm_agent_restarts_total are per revision too: ``WasmSeries`` below.
WASM_VIOLATIONS = Counter(
    "caxton_wasm_security_violations_total",
    "Limit or policy violations (fuel, timeout, memory, imports).",
    ["agent", "kind"],
    registry=REGISTRY,
)

# --- tools of config agents (caxton.llm.tools.loop) -------------------------------------
TOOL_CALLS = Counter(
    "caxton_tool_calls_total",
    "Tool calls of config agents by outcome (ok, invalid_arguments, not_allowed, timeout, too_large, failed, "
    "max_tool_calls); a tool the agent does not list is tool=\"(unlisted)\".",
    ["agent", "tool", "outcome"], registry=REGISTRY,
)
TOOL_CALL_DURATION = Histogram(
    "caxton_tool_call_duration_seconds", "Duration of one tool call.", ["agent", "tool"],
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
TOOL_CALLS_ACTIVE = Gauge("caxton_tool_calls_active", "Tool calls running now.", registry=REGISTRY)

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

# --- the event stream (GET /api/v1/events/stream, caxton.engine.stream) ---------------
EVENT_STREAMS_OPEN = Gauge("caxton_event_streams_open", "Server-sent event streams open now.", registry=REGISTRY)
EVENT_STREAMS_DROPPED = Counter(
    "caxton_event_streams_dropped_total", "Event streams dropped because their client read too slowly (overflow).",
    registry=REGISTRY,
)

# --- backups -----------------------------------------------------------------------
#: Who asked for a backup: the engine's schedule (``backups.interval``) or an admin (POST /api/v1/backups).
BACKUP_TRIGGERS = ("schedule", "api")
BACKUPS = Counter(
    "caxton_backups_total", "Backups taken, by trigger (schedule, api) and outcome (success, failure).",
    ["trigger", "outcome"], registry=REGISTRY,
)
for _trigger in BACKUP_TRIGGERS:  # present at 0: increase(...{outcome="failure"}) sees the first failure
    for _outcome in ("success", "failure"):
        BACKUPS.labels(_trigger, _outcome)

# --- memory ----------------------------------------------------------------------
MEMORY_SEARCH = Histogram(
    "caxton_memory_search_duration_seconds", "Semantic search latency.", buckets=_LATENCY_BUCKETS, registry=REGISTRY
)


#: The reason a revision's error counter is created with at 0 (the generic message failure), so
#: ``sum by (agent) (rate(caxton_agent_errors_total[5m]))`` is 0, not empty, before the first error.
DEFAULT_ERROR_REASON = "agent_failure"


_RESPONSE = "caxton_agent_response_duration_seconds"
_LES = [repr(float(b)) for b in _LATENCY_BUCKETS] + ["+Inf"]


class RevisionSeries:
    """Messages, errors and response times of one serving revision.

    Kept as plain numbers under one lock and rendered by ``render_revisions``: prometheus_client's
    generic exposition cost ~7 us a sample, too slow for 1,000 agents x 20 samples in 50 ms. Agent
    ids and revisions never need escaping (ids are ``[a-z0-9-]``), so each revision's label text is
    built once.
    """

    __slots__ = ("agent", "revision", "labels", "bucket_lines", "_lock", "messages", "errors", "buckets", "total",
                 "users")

    def __init__(self, agent: str, revision: str) -> None:
        self.agent, self.revision = agent, revision
        self.labels = f'agent="{_escape(agent)}",revision="{_escape(revision)}"'
        #: The text of each bucket's line up to its value, built once.
        self.bucket_lines = [f'{_RESPONSE}_bucket{{{self.labels},le="{le}"}} ' for le in _LES]
        self._lock = threading.Lock()
        self.messages = 0
        self.errors: dict[str, int] = {DEFAULT_ERROR_REASON: 0}
        self.buckets = [0] * (len(_LATENCY_BUCKETS) + 1)  # per bucket, not cumulative; last: +Inf
        self.total = 0.0
        self.users = 0

    def observe(self, seconds: float) -> None:
        """One answered message that took ``seconds``."""
        index = bisect.bisect_left(_LATENCY_BUCKETS, seconds)
        with self._lock:
            self.messages += 1
            self.buckets[index] += 1
            self.total += seconds

    def fail(self, reason: str) -> None:
        """One failed message (counted in messages too)."""
        with self._lock:
            self.messages += 1
            self.errors[reason] = self.errors.get(reason, 0) + 1

    def snapshot(self) -> tuple[int, dict[str, int], list[int], float]:
        with self._lock:
            return self.messages, dict(self.errors), list(self.buckets), self.total


_serving: dict[tuple[str, str], RevisionSeries] = {}
_serving_lock = threading.Lock()


def serve_revision(agent: str, revision: str) -> RevisionSeries:
    """A runtime of this revision starts serving: its series exist from now, at 0 (shared by its runtimes)."""
    with _serving_lock:
        series = _serving.get((agent, revision))
        if series is None:
            series = _serving[(agent, revision)] = RevisionSeries(agent, revision)
        series.users += 1
        return series


def forget_revision(agent: str, revision: str) -> None:
    """A runtime of this revision is retired: once none is left, remove every series of the revision."""
    with _serving_lock:
        series = _serving.get((agent, revision))
        if series is None:
            return
        series.users -= 1
        if series.users > 0:
            return
        del _serving[(agent, revision)]
        _wasm.pop((agent, revision), None)


def forget_agent(agent: str) -> None:
    """A removed agent: drop its per-agent series (reloads, rollout verdicts and endings, violations, tool calls)."""
    for metric in (AGENT_RELOADS, ROLLOUT_VERDICTS, ROLLOUTS_FINISHED, WASM_VIOLATIONS, TOOL_CALLS, TOOL_CALL_DURATION):
        with metric._lock:  # noqa: SLF001 - prometheus_client has no public listing of a metric's children
            found = [key for key in metric._metrics if key[0] == agent]  # noqa: SLF001
        for labels in found:
            metric.remove(*labels)


class WasmSeries:
    """Fuel, memory and restarts of one WASM revision's sandbox (rendered by ``render_revisions``)."""

    __slots__ = ("labels", "_lock", "fuel", "memory", "memory_limit", "restarts")

    def __init__(self, agent: str, revision: str) -> None:
        self.labels = f'agent="{_escape(agent)}",revision="{_escape(revision)}"'
        self._lock = threading.Lock()
        self.fuel = 0
        self.memory = 0
        self.memory_limit = 0
        self.restarts = 0

    def consumed(self, fuel: int) -> None:
        with self._lock:
            self.fuel += fuel

    def restarted(self) -> None:
        with self._lock:
            self.restarts += 1


_wasm: dict[tuple[str, str], WasmSeries] = {}


def wasm_series(agent: str, revision: str) -> WasmSeries:
    """The sandbox series of a WASM revision (one per revision; removed with its serving series)."""
    with _serving_lock:
        series = _wasm.get((agent, revision))
        if series is None:
            series = _wasm[(agent, revision)] = WasmSeries(agent, revision)
        return series


def sample_value(name: str, labels: dict[str, str] | None = None) -> float | None:
    """One sample of the whole exposition (registry and per-revision families), or None; for tests."""
    from prometheus_client.parser import text_string_to_metric_families

    want = labels or {}
    for family in text_string_to_metric_families(exposition().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == want:
                return float(sample.value)
    return None


def render_revisions() -> str:
    """The per-revision families in the Prometheus text format (appended to the registry's output)."""
    with _serving_lock:
        revisions = sorted(_serving.values(), key=lambda s: (s.agent, s.revision))
        sandboxes = [_wasm[key] for key in sorted(_wasm)]
    snaps = [(s.labels, *s.snapshot()) for s in revisions]
    out = [
        "# HELP caxton_agent_messages_total Messages handled (answered or failed), per serving revision.",
        "# TYPE caxton_agent_messages_total counter",
    ]
    out += [f"caxton_agent_messages_total{{{labels}}} {messages}.0" for labels, messages, _, _, _ in snaps]
    out += ["# HELP caxton_agent_errors_total Messages that failed, per serving revision and reason.",
            "# TYPE caxton_agent_errors_total counter"]
    out += [f'caxton_agent_errors_total{{{labels},reason="{_escape(reason)}"}} {n}.0'
            for labels, _, errors, _, _ in snaps for reason, n in sorted(errors.items())]
    name = _RESPONSE
    out += [f"# HELP {name} Time to answer one message, per serving revision.", f"# TYPE {name} histogram"]
    for series, (labels, _, _, buckets, total) in zip(revisions, snaps):
        running = 0
        for line, n in zip(series.bucket_lines, buckets):
            running += n
            out.append(line + str(running))
        out.append(f"{name}_count{{{labels}}} {running}")
        out.append(f"{name}_sum{{{labels}}} {total!r}")
    for name, kind, text, field in _WASM_FAMILIES:
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        out += [f"{name}{{{w.labels}}} {getattr(w, field)}" for w in sandboxes]
    return "\n".join(out) + "\n"


_WASM_FAMILIES = (
    ("caxton_wasm_fuel_consumed_total", "counter", "Fuel consumed.", "fuel"),
    ("caxton_wasm_memory_bytes", "gauge", "Linear memory in use.", "memory"),
    ("caxton_wasm_memory_limit_bytes", "gauge", "Linear memory limit.", "memory_limit"),
    ("caxton_wasm_agent_restarts_total", "counter", "Sandbox instance restarts.", "restarts"),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


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
class BackupView:
    """The last good backup (scheduled or not) and the schedule, as the gauges show them."""

    last_success_timestamp: float | None
    last_duration_seconds: float | None = None
    last_size_bytes: int | None = None
    interval_seconds: float | None = None


@dataclass(frozen=True)
class ScrapeView:
    """The engine's state at one scrape (``Engine.scrape_view``)."""

    agents: dict[tuple[str, str], int]
    serial: int
    uptime_seconds: float
    memory_entities: int | None = None
    memory_sqlite_bytes: int | None = None
    memory_entities_limit: int | None = None
    rollouts: list[RolloutView] = field(default_factory=list)
    backup: BackupView | None = None


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
        if view.memory_entities_limit is not None:
            yield _gauge("caxton_memory_entities_limit", "The most entities memory accepts (memory.max_entities).",
                         view.memory_entities_limit)
        yield from _rollouts(view.rollouts)
        if view.backup is not None:
            yield from _backup(view.backup)


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


def _backup(backup: BackupView) -> Iterator[Metric]:
    """The last-backup gauges: the timestamp is 0 while a schedule has produced none yet (so it looks stale)."""
    scheduled = backup.interval_seconds is not None
    if backup.last_success_timestamp is not None or scheduled:
        yield _gauge("caxton_backup_last_success_timestamp_seconds",
                     "Unix time the last good backup was written (0: none yet).", backup.last_success_timestamp or 0)
    if backup.last_duration_seconds is not None:
        yield _gauge("caxton_backup_last_duration_seconds", "Time the last good backup took.",
                     backup.last_duration_seconds)
    if backup.last_size_bytes is not None:
        yield _gauge("caxton_backup_last_size_bytes", "Size of the last good backup's archive.", backup.last_size_bytes)
    if backup.interval_seconds is not None:
        yield _gauge("caxton_backup_interval_seconds", "Seconds between scheduled backups (backups.interval).",
                     backup.interval_seconds)


SCRAPE = StateCollector()
REGISTRY.register(SCRAPE)  # type: ignore[arg-type]  # structural Collector


def exposition() -> bytes:
    """The whole ``/metrics`` body: the registry, then the per-revision families."""
    from prometheus_client import generate_latest

    return generate_latest(REGISTRY) + render_revisions().encode()
