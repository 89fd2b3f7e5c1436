"""Progressive delivery: rollouts of a new agent revision beside the serving one.

- ``strategies``: the ``Strategy`` Protocol and the ``STRATEGIES`` registry
  (immediate/graceful, gradual, canary/traffic-splitting, blue-green, ab-test,
  shadow/parallel).
- ``controller``: ``RolloutController`` starts, drives, promotes, rolls back
  and recovers rollouts (one background thread).
- ``analysis``: ``AnalysisProvider`` Protocol and ``PROVIDERS`` (the engine's
  own per-revision metrics, a Prometheus query).
- ``window``: per-revision metric windows recorded on the message path.
- ``shadow``: the mirror that copies messages to a shadow revision.
- ``model``, ``run``: the record, one run in progress (persisted by
  ``caxton.engine.state.rollouts``).

The engine (``caxton.engine.core``) creates the controller; plan/apply
(``caxton.engine.applies``) starts rollouts; ``caxton.engine.http.rollouts``
serves ``/api/v1/rollouts``. See docs/rollouts.md.
"""
