"""Where the tests find the repository, and a free local port: the one definition of each.

    REPO_ROOT          the checkout (pyproject.toml, docs/, deploy/, examples/)
    EXAMPLES           examples/quickstart
    free_port()        a TCP port on 127.0.0.1 nothing listens on (now)
"""

from __future__ import annotations

import socket
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "quickstart"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
