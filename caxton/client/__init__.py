"""The engine's HTTP client, used by the CLI and the reconcile loop: a transport, one module per resource,
and the plan/apply use case.

- ``transport``: ``EngineClient`` (httpx, TLS from ``tls``, URLs from ``urls``), errors turned into
  ``caxton.errors``, answers parsed into ``caxton.spec.api`` models;
- one module per resource, each a set of functions ``verb(client, ...)``: ``status`` (health, ready,
  the state snapshot, events, metrics), ``agents``, ``lock``, ``applies``, ``rollouts``, ``memory``,
  ``backups``, ``reconcile`` (the loop's status board);
- ``plan_apply``: make a plan, reload a saved one, submit it under the lock and follow it (``caxton
  plan``, ``caxton apply``, ``caxton reconcile`` and ``caxton up`` all go through it).

The CLI never touches the engine's internals: every command that talks to an engine goes through
this package.
"""
