"""Several engines on one PostgreSQL store (issue 14): each follows the store, one leads the rollouts.

- ``sync``: reconcile this engine's runtimes and routes to what the store says.
- ``remote``: rollouts across replicas: the leader adopts the ones in flight and acts on the
  requests other replicas record; followers forward ``promote``/``abort`` to it.
- ``orphans``: the unfinished applies of dead engines, ended as interrupted by any live engine.
- ``follower``: the thread that watches the store (``caxton.engine.state.feed``) and runs them.

None of it runs on the embedded SQLite store (one engine per data directory). See docs/scale-out.md.
"""
