"""Message threads (caxton.engine.serving.threads): a pool of their own, nicer than the event loop on Linux."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import anyio
import anyio.to_thread
import pytest

from caxton.engine.serving import threads


def _whoami() -> tuple[str, int]:
    tid = threading.get_native_id()
    return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, tid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are a Linux feature")
def test_a_message_thread_runs_nicer_than_the_loop_and_apart_from_the_default_pool() -> None:
    async def main() -> tuple[tuple[str, int], tuple[str, int]]:
        return _whoami(), await threads.run(_whoami)

    (loop_name, loop_nice), (thread_name, thread_nice) = asyncio.run(main())
    assert thread_name.startswith("caxton-message") and thread_name != loop_name
    assert thread_nice == min(19, loop_nice + threads.MESSAGE_NICE)


def test_the_wait_for_a_message_thread_survives_cancellation_until_the_work_is_done() -> None:
    """A client that hangs up (Starlette cancels the request's anyio scope) does not end the wait early:
    the message's bulkhead slot stays taken until its work is done."""
    started, release = threading.Event(), threading.Event()
    events: list[str] = []

    def work() -> str:
        started.set()
        release.wait(10)
        events.append("work done")
        return "answer"

    scopes: list[anyio.CancelScope] = []

    async def request() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await threads.run(work)
            events.append("wait ended")

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(request)
            await anyio.to_thread.run_sync(started.wait, 10)
            scopes[0].cancel()  # the client hung up
            await anyio.sleep(0.05)
            events.append("cancelled")
            release.set()

    anyio.run(main)
    assert events == ["cancelled", "work done", "wait ended"]
