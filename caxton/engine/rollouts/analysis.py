"""Analysis of a rollout's candidate: measurements and a verdict per check.

Two providers satisfy ``AnalysisProvider`` and are listed in ``PROVIDERS``:
``EngineMetrics`` reads the per-revision windows the engine records
(``caxton.engine.rollouts.window``): error rate, p95 latency and, for a
shadow, divergence rate (checked against ``max_error_rate``); ``PrometheusQuery`` runs ``analysis.prometheus.query``
against a Prometheus server over HTTP. Every measurement carries its value,
threshold and verdict (pass, fail, no_data); fewer requests than
``min_requests``, an empty query result or an unreachable server is
``no_data``, which the controller resolves with ``on_no_data``: never a
silent pass. Called by ``caxton.engine.rollouts.controller``.
"""

from __future__ import annotations

import math
import operator
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from caxton.engine.rollouts.model import Measurement, Verdict
from caxton.engine.rollouts.window import Snapshot
from caxton.spec.agent import AnalysisSpec

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


@dataclass(frozen=True)
class Subject:
    """What one analysis looks at: the candidate's window (and the stable one's, as baseline)."""

    agent_id: str
    revision: int
    stable_revision: int
    step: int
    candidate: Snapshot
    stable: Snapshot | None
    analysis: AnalysisSpec
    interval: float
    at: str
    #: The candidate gets copies (shadow): its divergence rate is measured too.
    shadow: bool = False


class AnalysisProvider(Protocol):
    """Measures a subject. ``quick`` asks for cheap local measurements only (checked every tick)."""

    def measure(self, subject: Subject, *, quick: bool) -> list[Measurement]: ...


class EngineMetrics:
    """Error rate, p95 latency and divergence rate from the engine's own windows."""

    def measure(self, subject: Subject, *, quick: bool) -> list[Measurement]:
        spec, now, base = subject.analysis, subject.candidate, subject.stable
        found = [self._one(subject, "error_rate", now.error_rate, spec.max_error_rate, now.requests,
                           base.error_rate if base else None)]
        if spec.max_p95_latency_ms is not None:
            found.append(self._one(subject, "p95_latency_ms", now.p95_ms, spec.max_p95_latency_ms, now.requests,
                                   base.p95_ms if base else None))
        if subject.shadow:
            # A shadow's reply that differs from the stable one's is its failure mode: same threshold.
            found.append(self._one(subject, "divergence_rate", now.divergence_rate, spec.max_error_rate,
                                   now.compared, None))
        return found

    def _one(
        self, subject: Subject, metric: str, value: float | None, threshold: float, requests: int,
        baseline: float | None,
    ) -> Measurement:
        enough = requests >= max(subject.analysis.min_requests, 1) and value is not None
        verdict: Verdict = "no_data"
        detail = f"{requests} request(s), {subject.analysis.min_requests} needed"
        if enough and value is not None:
            verdict = "pass" if value <= threshold else "fail"
            detail = f"{requests} request(s)"
        return Measurement(at=subject.at, step=subject.step, metric=metric, revision=subject.revision,
                           value=None if value is None else round(value, 6), threshold=threshold, comparison="<=",
                           verdict=verdict, requests=requests, baseline=baseline, detail=detail)


class PrometheusQuery:
    """``analysis.prometheus``: one instant query; the first sample's value against the threshold.

    The query may use ``$agent``, ``$revision``, ``$stable_revision`` and
    ``$interval`` (e.g. ``5s``), substituted before it is sent.
    """

    def measure(self, subject: Subject, *, quick: bool) -> list[Measurement]:
        config = subject.analysis.prometheus
        if config is None or quick:
            return []
        query = string.Template(config.query).safe_substitute(
            agent=subject.agent_id, revision=subject.revision, stable_revision=subject.stable_revision,
            interval=f"{max(1, math.ceil(subject.interval))}s",
        )
        value, detail = _instant_query(config.url, query, timeout=max(1.0, min(5.0, subject.interval)))
        verdict: Verdict = "no_data"
        if value is not None:
            verdict = "pass" if _COMPARE[config.comparison](value, config.threshold) else "fail"
        return [Measurement(at=subject.at, step=subject.step, metric=f"prometheus: {query}",
                            revision=subject.revision, value=value, threshold=config.threshold,
                            comparison=config.comparison, verdict=verdict, requests=subject.candidate.requests,
                            detail=detail)]


def _instant_query(url: str, query: str, *, timeout: float) -> tuple[float | None, str]:
    """(value, detail) of an instant query; value None when there is no usable sample."""
    import httpx

    endpoint = url.rstrip("/") + "/api/v1/query"
    try:
        response = httpx.get(endpoint, params={"query": query}, timeout=timeout)
        body: Any = response.json()
    except (httpx.HTTPError, ValueError) as error:
        return None, f"query to {endpoint} failed: {type(error).__name__}: {error}"
    if response.status_code != 200 or body.get("status") != "success":
        return None, f"Prometheus answered HTTP {response.status_code}: {body.get('error') or body}"[:300]
    return _sample(body.get("data") or {})


def _sample(data: dict[str, Any]) -> tuple[float | None, str]:
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        raw = result[1]
    elif kind == "vector" and isinstance(result, list) and result:
        raw = result[0]["value"][1]
    else:
        return None, "the query returned no sample"
    value = float(raw)
    if math.isnan(value) or math.isinf(value):
        return None, f"the query returned {raw}"
    return value, f"{kind} of {len(result) if kind == 'vector' else 1} sample(s)"


#: Every analysis provider, in the order their measurements are shown.
PROVIDERS: dict[str, AnalysisProvider] = {"engine": EngineMetrics(), "prometheus": PrometheusQuery()}


def evaluate(subject: Subject, *, quick: bool = False) -> tuple[Verdict, list[Measurement]]:
    """All providers' measurements and the combined verdict (fail > no_data > pass)."""
    found: list[Measurement] = []
    for provider in PROVIDERS.values():
        found.extend(provider.measure(subject, quick=quick))
    return combine(found), found


def combine(measurements: Sequence[Measurement]) -> Verdict:
    verdicts = {m.verdict for m in measurements}
    if "fail" in verdicts:
        return "fail"
    if "no_data" in verdicts or not measurements:
        return "no_data"
    return "pass"
