"""Fixtures of the rollout tests: an in-process engine with a WASM agent (in real or simulated time), and a
load generator."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest

from caxton.clock import SYSTEM, Clock
from caxton.engine.core import Engine
from caxton.engine.intake import Prepared
from caxton.engine.state.records import Source
from caxton.errors import CaxtonError
from caxton.spec.project import ProjectConfig
from tests.rollouts import agents
from tests.support.clock import ManualClock

_REVISION = re.compile(r"\(revision (\d+)\)")
#: The rollout tests need no vector memory (its model would load in the background of every engine).
NO_MEMORY = ProjectConfig.model_validate({"memory": {"enabled": False}})


@dataclass
class Reply:
    sent: float
    done: float
    conversation: str | None
    revision: int | None
    error: str | None = None


@dataclass
class Load:
    """Threads sending messages continuously to one agent; every reply and failure is kept.

    ``conversation(thread, n)`` names the conversation of the n-th message of a thread
    (default: a new conversation every 4 messages).
    """

    send: Callable[[str | None], dict[str, Any]]
    threads: int = 3
    pause: float = 0.002
    conversation: Callable[[int, int], str | None] = lambda k, n: f"t{k}-c{n // 4}"
    replies: list[Reply] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Self:
        for k in range(self.threads):
            worker = threading.Thread(target=self._run, args=(k,), daemon=True)
            self._workers.append(worker)
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(10)

    def _run(self, k: int) -> None:
        n = 0
        while not self._stop.is_set():
            conversation = self.conversation(k, n)
            n += 1
            sent = time.monotonic()
            try:
                result = self.send(conversation)
                self.replies.append(Reply(sent, time.monotonic(), conversation, int(result["revision"])))
            except CaxtonError as error:
                found = _REVISION.search(error.message)
                self.replies.append(Reply(sent, time.monotonic(), conversation,
                                          int(found.group(1)) if found else None, f"{error.code}: {error.message}"))
            time.sleep(self.pause)

    # --- checks -----------------------------------------------------------------------------
    def failures(self) -> list[Reply]:
        return [r for r in self.replies if r.error is not None]

    def assert_only_failures_of(self, revision: int | None) -> None:
        """0 messages lost or failed, except the agent's own errors from ``revision``."""
        bad = [r for r in self.failures() if revision is None or r.revision != revision or "boom" not in str(r.error)]
        assert not bad, f"{len(bad)} message(s) failed: {[r.error for r in bad[:3]]}"
        assert self.replies, "the load generator sent nothing"

    def revisions(self, since: float = 0.0, until: float = float("inf")) -> dict[int | None, int]:
        counts: dict[int | None, int] = {}
        for r in self.replies:
            if since <= r.sent and r.done <= until:
                counts[r.revision] = counts.get(r.revision, 0) + 1
        return counts

    def switched(self, until: float) -> dict[str, list[int | None]]:
        """Conversations that got replies from more than one revision among messages sent before ``until``."""
        seen: dict[str, list[int | None]] = {}
        for r in sorted(self.replies, key=lambda r: r.sent):
            if r.conversation is not None and r.sent < until and r.error is None:
                revs = seen.setdefault(r.conversation, [])
                if r.revision not in revs:
                    revs.append(r.revision)
        return {c: revs for c, revs in seen.items() if len(revs) > 1}


@dataclass
class Progress:
    """A rollout progress listener that keeps (monotonic time, status, message)."""

    lines: list[tuple[float, str, str]] = field(default_factory=list)

    def __call__(self, status: str, message: str) -> None:
        self.lines.append((time.monotonic(), status, message))

    def finished_at(self) -> float:
        final = [t for t, status, _ in self.lines if status not in ("running", "paused")]
        assert final, f"the rollout did not finish: {self.lines}"
        return final[0]

    def messages(self) -> list[str]:
        return [m for _, _, m in self.lines]


def _echo_engine(tmp_path: Path, clock: Clock = SYSTEM, store_url: str | None = None) -> Iterator[Engine]:
    config = NO_MEMORY if store_url is None else ProjectConfig.model_validate(
        {"memory": {"enabled": False}, "store": {"url": store_url}})
    engine = Engine(config, tmp_path / "data", clock=clock)
    engine.start()
    engine.deploy(agents.spec("echo", 1), agents.module(1))
    yield engine
    if engine.started:
        engine.stop()


@pytest.fixture
def echo_engine(tmp_path: Path) -> Iterator[Engine]:
    """A started in-process engine with WASM agent ``echo`` at revision 1 (replies {"v": 1})."""
    yield from _echo_engine(tmp_path)


@pytest.fixture
def sim_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim_echo_engine(tmp_path: Path, sim_clock: ManualClock) -> Iterator[Engine]:
    """``echo_engine`` in simulated time: its rollouts move only when ``sim_clock`` is advanced."""
    yield from _echo_engine(tmp_path, sim_clock)


def advance(clock: ManualClock, seconds: float, *, by: float = 1.0) -> None:
    """Let ``seconds`` pass ``by`` seconds at a time, each once the rollout controller has ticked."""
    clock.settle()
    for _ in range(round(seconds / by)):
        clock.advance(by)
        clock.settle()


def start(engine: Engine, rollout: dict[str, Any], module: bytes, *, version: int = 2,
          progress: Progress | None = None) -> dict[str, Any]:
    """Start a rollout of ``echo`` to ``module`` with ``rollout`` (its strategy from the dict)."""
    return engine.rollouts.start(Prepared.of(agents.spec("echo", version, rollout), module), Source(actor="test"),
                                 strategy=rollout["strategy"], listener=progress)


def candidate_requests(engine: Engine, name: str = "echo") -> int:
    """Messages in the window of the candidate of ``name``'s rollout in flight (0: none in flight)."""
    shown = engine.rollouts.status(name, limit=1)["rollouts"]
    live = shown[0].get("live") if shown else None
    return int(live["candidate"]["requests"]) if live else 0


def sender(engine: Engine, name: str = "echo") -> Callable[[str | None], dict[str, Any]]:
    return lambda conversation: engine.send(name, {"n": 1}, conversation)
