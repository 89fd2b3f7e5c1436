"""The reconcile loop: keep engines equal to a git branch or a directory, continuously.

``sources`` (a watched directory, a local git branch) and ``remote`` (a git
URL cloned into the data dir) say which revision is current; ``passes`` runs
one pass (plan + apply through ``caxton.client``, the CLI's own code path)
against one engine or a rolling wave of them; ``loop`` schedules passes (new
commit, webhook, interval for self-healing, capped backoff after failures);
``status`` is the shape the loop reports and ``board`` sends it to the
engine. Called by ``caxton reconcile`` and ``caxton up`` (``caxton.cli``).
Sits beside ``caxton.client``: it never imports the engine's internals.
"""
