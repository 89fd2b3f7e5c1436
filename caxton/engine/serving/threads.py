"""The message threads: where a message that cannot run on the event loop runs.

A message to a slow WASM revision (a busy loop of tens of ms) or to a config
agent (an LLM call) runs in one of these threads, never in the default pool the
control-plane endpoints use. On Linux each thread lowers its own CPU priority
by ``MESSAGE_NICE`` when it starts (a thread is a task there: ``setpriority``
on its native id changes that thread only), so a saturated CPU-bound agent
takes what the event loop, the control plane and the other agents leave, not
the other way round: the event loop keeps answering healthy agents and refusing
the excess (429/503) at its own speed. Elsewhere the threads keep the process's
priority.

``run(call)`` runs ``call`` in a message thread and waits for it on the event
loop. The wait is shielded from cancellation (as ``anyio.to_thread.run_sync``
is): a client that hangs up does not free the message's bulkhead slot while
its work still runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio

T = TypeVar("T")

#: Most messages running in threads at once (more wait on the loop, in their agent's bulkhead).
MESSAGE_THREADS = 256
#: How much nicer than the rest of the engine a message thread is (Linux; 0..19).
MESSAGE_NICE = 10

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _lower_priority() -> None:
    """Make the calling thread ``MESSAGE_NICE`` nicer (Linux only; a refusal is ignored)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + MESSAGE_NICE))
    except OSError:
        return


def pool() -> ThreadPoolExecutor:
    """The process's message threads (made on first use, threads started as needed)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MESSAGE_THREADS, thread_name_prefix="caxton-message",
                                       initializer=_lower_priority)
        return _pool


async def run(call: Callable[[], T]) -> T:
    """Run ``call`` in a message thread; wait for it on the loop (shielded: see the module)."""
    future = pool().submit(call)
    with anyio.CancelScope(shield=True):
        result = await asyncio.wrap_future(future)
    return result
