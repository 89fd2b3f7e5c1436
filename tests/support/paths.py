"""Where the tests find the repository, and a free local port: the one definition of each.

    REPO_ROOT          the checkout (pyproject.toml, docs/, deploy/, examples/)
    EXAMPLES           examples/quickstart
    free_port()        a TCP port on 127.0.0.1 nothing listens on (now), from this test process's own block
    python_path(env)   PYTHONPATH for a ``python -m caxton`` child: this checkout first, then env's own
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "quickstart"


#: Ports handed out by ``free_port``: below the kernel's ephemeral range (32768-60999 on Linux), so no
#: outgoing connection takes one between ``free_port()`` and the server's bind; one block per test process
#: (pytest-xdist's workers gw0, gw1, ... and a run without xdist), so two workers never pick the same port.
FIRST_PORT = 20_000
PORTS_PER_PROCESS = 400
PROCESSES = 30


def _block() -> int:
    """0 without pytest-xdist, 1 + n on worker ``gwN`` (wrapping past ``PROCESSES``)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return 1 + int(worker[2:]) % (PROCESSES - 1) if worker.startswith("gw") else 0


def _candidates() -> Iterator[int]:
    """This process's block in order, from a random start (two runs at once rarely start together)."""
    first = FIRST_PORT + _block() * PORTS_PER_PROCESS
    start = random.randrange(PORTS_PER_PROCESS)
    return (first + (start + n) % PORTS_PER_PROCESS for n in itertools.count())


_PORTS = _candidates()


def free_port() -> int:
    """The next port of this process's block that can be bound on 127.0.0.1 now (each handed out once per lap)."""
    for port in itertools.islice(_PORTS, PORTS_PER_PROCESS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (another run, a server still up)
            return port
    raise RuntimeError(f"no free port in {FIRST_PORT + _block() * PORTS_PER_PROCESS}+{PORTS_PER_PROCESS}")


def python_path(env: Mapping[str, str]) -> str:
    """``REPO_ROOT`` first on ``env``'s PYTHONPATH (an outer PYTHONPATH, e.g. another typer, kept)."""
    return os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
