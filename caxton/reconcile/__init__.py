"""The reconcile loop: keep engines equal to a git branch or a directory, continuously.

``sources`` (a watched directory, a local git branch) and ``remote`` (a git
URL cloned into the data dir) say which revision is current; ``passes`` runs
one pass (plan + submit through ``caxton.client``, the CLI's own code path;
it never follows a rollout) against one engine or a rolling wave of them;
``tracking`` remembers the applies in flight and holds rolled-back versions;
``health`` derives each agent's SYNC/HEALTH from the engine's snapshot and a
plan; ``loop`` schedules passes (new commit, webhook, interval for
self-healing, capped backoff after failures) and refreshes SYNC/HEALTH in
between; ``status`` is the shape the loop reports and ``board`` sends it to
the engine. Called by ``caxton reconcile`` and ``caxton up`` (``caxton.cli``).
Sits beside ``caxton.client``: it never imports the engine's internals.
"""
