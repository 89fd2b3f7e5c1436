"""The Caxton engine: the long-running server that holds and runs agents.

``server`` builds the process (``caxton server start`` and ``caxton up``),
``api`` the HTTP API, ``operations`` the deploy/suspend/resume/remove
operations, ``store`` the durable SQLite state, ``states`` the lifecycle
state machines, ``router`` and ``runtime`` the serving path.
"""
