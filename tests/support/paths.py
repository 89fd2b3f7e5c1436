"""Where the tests find the repository, and a free local port: the one definition of each.

    REPO_ROOT          the checkout (pyproject.toml, docs/, deploy/, examples/)
    EXAMPLES           examples/quickstart
    free_port()        a TCP port on 127.0.0.1 nothing listens on (now)
    python_path(env)   PYTHONPATH for a ``python -m caxton`` child: this checkout first, then env's own
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "quickstart"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_path(env: Mapping[str, str]) -> str:
    """``REPO_ROOT`` first on ``env``'s PYTHONPATH (an outer PYTHONPATH, e.g. another typer, kept)."""
    return os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
