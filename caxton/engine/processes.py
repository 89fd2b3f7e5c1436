"""Whether a process named by host and pid is known to be gone (a lease holder, an engine's heartbeat row).

Only a process of this host can be checked; one of another host, or a pid that
exists (perhaps reused), is taken for alive. Used by ``caxton.engine.lease``
and ``caxton.engine.state.schema``.
"""

from __future__ import annotations

import os
import socket


def gone(host: str, pid: int) -> bool:
    """True only when ``pid`` on ``host`` is this host's and no such process exists."""
    if host != socket.gethostname() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, as another user
        return False
    return False
