"""Conversation history of config agents: the in-memory and the durable store.

They satisfy ``caxton.llm.conversations.ConversationStore``; the config-agent
runtime (``caxton.llm.config_runtime``) is the only caller. Conversations are
keyed by agent *id* (not revision), so a hot reload to a new revision keeps
every open conversation and its history. The engine
builds one ``DurableConversationStore`` (turns written to the engine's
database before the reply is sent, read back lazily after a restart, the
process keeping only open conversations) and hands it to every config-agent
runtime; ``InMemoryConversationStore`` is the same without the database.

A conversation is *open* from its first message until it is ended or has
been idle longer than the store's ``idle_ttl``; ``begin`` enforces an
agent's ``max_conversations`` against the open ones. When they are all open,
a new conversation closes the agent's least recently used conversation that
has no message in flight and has been idle at least ``min_idle`` seconds
(``conversations.min_idle``); only when none has, ``begin`` refuses
(429 ``too_many_conversations``). A closed conversation's turns stay in the
durable store: it continues where it was on its next message (when there is
room). Each open conversation keeps at most ``max_bytes`` of turns
(``conversations.max_history_size``, UTF-8), the oldest dropped first, besides
at most ``max_turns`` turns. A config agent's tool exchanges are turns too
(``caxton.llm.conversations``); a history never starts inside one: what dropping the
oldest turns leaves of an exchange goes with them, so no ``tool`` turn outlives
the assistant turn that asked for it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from caxton import errors
from caxton.engine.state import turns as stored
from caxton.engine.state.history_db import HistoryDB
from caxton.llm import conversations as conv
from caxton.llm.conversations import Turn


DEFAULT_IDLE_TTL = 3600.0
DEFAULT_MAX_TURNS = 100
DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_MIN_IDLE = 30.0


@dataclass
class _Conversation:
    turns: deque[Turn]
    last_used: float = field(default=0.0)
    #: Messages in flight (``begin`` without ``finish`` yet): a busy conversation is never evicted.
    busy: int = 0
    #: UTF-8 bytes of ``turns``' contents.
    size: int = 0
    #: Appends since the store last trimmed this conversation (DurableConversationStore).
    untrimmed: int = 0


class InMemoryConversationStore:
    """``ConversationStore`` in process memory; lost when the engine stops.

    ``max_turns`` and ``max_bytes`` bound each conversation's history (oldest
    turns are dropped); ``idle_ttl`` seconds without a message closes a
    conversation; ``min_idle`` is how long a conversation must have been idle
    before a new one may close it to take its slot. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        idle_ttl: float = DEFAULT_IDLE_TTL,
        max_turns: int = DEFAULT_MAX_TURNS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        min_idle: float = DEFAULT_MIN_IDLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_ttl <= 0 or max_turns < 2 or max_bytes < 1 or min_idle < 0:
            raise ValueError("idle_ttl must be > 0, max_turns >= 2, max_bytes >= 1 and min_idle >= 0")
        self._idle_ttl = idle_ttl
        self._max_turns = max_turns
        self._max_bytes = max_bytes
        self._min_idle = min_idle
        self._clock = clock
        #: Whether open conversations keep their turns in memory (what ``history`` returns).
        self._caches = True
        self._lock = threading.Lock()
        self._agents: dict[str, dict[str, _Conversation]] = {}

    def begin(self, agent: str, conversation_id: str, *, limit: int) -> bool:
        with self._lock:
            now = self._clock()
            conversations = self._agents.setdefault(agent, {})
            existing = conversations.get(conversation_id)
            if existing is not None and not self._expired(existing, now):
                existing.last_used = now
                existing.busy += 1
                return False
            self._evict_expired(conversations, now)
            if len(conversations) >= limit and not self._evict_idle(conversations, now):
                raise _too_many(agent, limit, self._min_idle, self._slot_free_in(conversations, now))
            turns = self._load(agent, conversation_id, now)
            conversation = _Conversation(deque(maxlen=self._max_turns), now, busy=1)
            if self._caches:
                self._add(conversation, turns)
            conversations[conversation_id] = conversation
            return not turns

    def finish(self, agent: str, conversation_id: str) -> None:
        with self._lock:
            conversation = self._agents.get(agent, {}).get(conversation_id)
            if conversation is not None and conversation.busy > 0:
                conversation.busy -= 1
                conversation.last_used = self._clock()

    def _evict_idle(self, conversations: dict[str, _Conversation], now: float) -> bool:
        """Close the least recently used conversation idle at least ``min_idle`` s; False if none is."""
        idle = [(c.last_used, key) for key, c in conversations.items()
                if not c.busy and now - c.last_used >= self._min_idle]
        if not idle:
            return False
        del conversations[min(idle)[1]]
        return True

    def _slot_free_in(self, conversations: dict[str, _Conversation], now: float) -> float:
        """Seconds until a conversation not busy now has been idle ``min_idle`` (``min_idle`` if all are busy)."""
        waits = [self._min_idle - (now - c.last_used) for c in conversations.values() if not c.busy]
        return max(min(waits, default=self._min_idle), 0.0)

    def _add(self, conversation: _Conversation, turns: Sequence[Turn]) -> None:
        """Append ``turns``, then drop the oldest past ``max_turns`` or ``max_bytes`` (keeping the newest one),
        and what that left at the front of a tool exchange."""
        for turn in turns:
            if len(conversation.turns) == conversation.turns.maxlen:
                conversation.size -= _bytes(conversation.turns.popleft())
            conversation.turns.append(conv.copy(turn))
            conversation.size += _bytes(turn)
        while conversation.size > self._max_bytes and len(conversation.turns) > 1:
            conversation.size -= _bytes(conversation.turns.popleft())
        while conversation.turns and conv.in_tool_exchange(conversation.turns[0]):
            conversation.size -= _bytes(conversation.turns.popleft())

    def history(self, agent: str, conversation_id: str) -> list[Turn]:
        with self._lock:
            now = self._clock()
            conversation = self._agents.get(agent, {}).get(conversation_id)
            if conversation is None or self._expired(conversation, now):
                conversation = _Conversation(deque(maxlen=self._max_turns))
                self._add(conversation, self._load(agent, conversation_id, now))
            return [conv.copy(t) for t in conversation.turns]

    def _load(self, agent: str, conversation_id: str, now: float) -> list[Turn]:
        """Turns kept elsewhere for a conversation not open in this process (none here)."""
        return []

    def append(self, agent: str, conversation_id: str, turns: Sequence[Turn]) -> None:
        with self._lock:
            now = self._clock()
            conversations = self._agents.setdefault(agent, {})
            conversation = conversations.get(conversation_id)
            if conversation is None:
                conversation = conversations[conversation_id] = _Conversation(deque(maxlen=self._max_turns))
            if self._caches:
                self._add(conversation, turns)
            conversation.last_used = now

    def end(self, agent: str, conversation_id: str) -> None:
        with self._lock:
            self._agents.get(agent, {}).pop(conversation_id, None)

    def count(self, agent: str) -> int:
        with self._lock:
            conversations = self._agents.get(agent, {})
            self._evict_expired(conversations, self._clock())
            return len(conversations)

    def clear(self, agent: str) -> None:
        with self._lock:
            self._agents.pop(agent, None)

    def _expired(self, conversation: _Conversation, now: float) -> bool:
        return not conversation.busy and now - conversation.last_used > self._idle_ttl

    def _evict_expired(self, conversations: dict[str, _Conversation], now: float) -> None:
        for key in [k for k, c in conversations.items() if self._expired(c, now)]:
            del conversations[key]


class DurableConversationStore(InMemoryConversationStore):
    """``InMemoryConversationStore`` whose turns are also in the engine's database (the truth).

    ``append`` commits the turns before returning, so a reply is never sent for
    a turn a crash could lose (while a PostgreSQL store is down, a message with a
    ``conversation_id`` is refused: 503 ``store_unavailable``, from ``begin`` when
    the outage is known); a conversation not open in this process (after a
    restart) is read back on its next message. On PostgreSQL, where other
    engines may append to the same conversation, nothing is cached: ``history``
    reads the conversation's turns at every message (the same bounds applied),
    and this process keeps only which conversations are open. The database keeps the last
    ``max_turns`` turns of each conversation (trimmed every ``trim_every``
    appends, so at most ``max_turns + 2 * trim_every`` rows); turns older than ``idle_ttl``
    (``conversations.retention``) are deleted, at most every ``prune_every``
    seconds on a write. The clock is wall time (it is persisted).
    """

    def __init__(
        self,
        db: HistoryDB,
        *,
        idle_ttl: float = DEFAULT_IDLE_TTL,
        max_turns: int = DEFAULT_MAX_TURNS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        min_idle: float = DEFAULT_MIN_IDLE,
        clock: Callable[[], float] = time.time,
        prune_every: float = 60.0,
        trim_every: int = 8,
    ) -> None:
        super().__init__(idle_ttl=idle_ttl, max_turns=max_turns, max_bytes=max_bytes, min_idle=min_idle,
                         clock=clock)
        self._db = db
        #: Other engines may write these conversations (a PostgreSQL store): read them at every message.
        self._caches = db.dialect != "postgres"
        self._trim_every = trim_every
        self._prune_every = prune_every
        self._pruned_at = clock()

    def begin(self, agent: str, conversation_id: str, *, limit: int) -> bool:
        """As ``InMemoryConversationStore.begin``; ``StoreUnavailable`` at once while the database is down
        (before the model is asked: its answer could not be kept)."""
        self._db.ensure_available()
        return super().begin(agent, conversation_id, limit=limit)

    def append(self, agent: str, conversation_id: str, turns: Sequence[Turn]) -> None:
        now = self._clock()
        trim = self._due_for_trim(agent, conversation_id)  # before the database's lock: begin() takes ours first
        with self._db.write() as conn:
            stored.add(conn, agent, conversation_id, [_row(t) for t in turns], now)
            if trim:
                stored.trim(conn, agent, conversation_id, self._max_turns)
            if now - self._pruned_at >= self._prune_every:
                self._pruned_at = now
                stored.prune(conn, now - self._idle_ttl)
        super().append(agent, conversation_id, turns)

    def history(self, agent: str, conversation_id: str) -> list[Turn]:
        if self._caches:
            return super().history(agent, conversation_id)
        conversation = _Conversation(deque(maxlen=self._max_turns))
        self._add(conversation, self._load(agent, conversation_id, self._clock()))
        return [conv.copy(t) for t in conversation.turns]

    def _due_for_trim(self, agent: str, conversation_id: str) -> bool:
        """Count this append; True every ``trim_every``-th one (and for a conversation not open here)."""
        with self._lock:
            conversation = self._agents.get(agent, {}).get(conversation_id)
            if conversation is None:
                return True
            conversation.untrimmed += 1
            if conversation.untrimmed < self._trim_every:
                return False
            conversation.untrimmed = 0
            return True

    def prune(self) -> int:
        """Delete turns older than the retention now; return how many."""
        now = self._clock()
        with self._db.write() as conn:
            self._pruned_at = now
            return stored.prune(conn, now - self._idle_ttl)

    def end(self, agent: str, conversation_id: str) -> None:
        with self._db.write() as conn:
            stored.delete(conn, agent, conversation_id)
        super().end(agent, conversation_id)

    def clear(self, agent: str) -> None:
        with self._db.write() as conn:
            stored.delete(conn, agent)
        super().clear(agent)

    def _load(self, agent: str, conversation_id: str, now: float) -> list[Turn]:
        with self._db.read() as conn:
            rows = stored.last(conn, agent, conversation_id, now - self._idle_ttl, self._max_turns)
        return [_turn(row) for row in rows]


def _row(turn: Turn) -> stored.StoredTurn:
    calls = turn.get("tool_calls")
    return stored.StoredTurn(turn["role"], turn["content"], json.dumps(calls) if calls else None,
                             turn.get("tool_call_id"))


def _turn(row: stored.StoredTurn) -> Turn:
    if row.role == "tool":
        return Turn(role="tool", content=row.content, tool_call_id=row.tool_call_id or "")
    turn = Turn(role="user" if row.role == "user" else "assistant", content=row.content)
    if row.tool_calls:
        turn["tool_calls"] = json.loads(row.tool_calls)
    return turn


def _bytes(turn: Turn) -> int:
    return conv.turn_size(turn)


def _too_many(agent: str, limit: int, min_idle: float, free_in: float) -> errors.TooManyConversations:
    error = errors.TooManyConversations(
        f"agent {agent!r} already has {limit} open conversations (resource_limits.max_conversations), "
        f"all busy or used in the last {min_idle:g}s (conversations.min_idle)",
        hint=(
            "continue an existing conversation, send without conversation_id (stateless), "
            "retry after Retry-After seconds (an idle conversation then gives up its slot), "
            "or raise resource_limits.max_conversations in the agent file"
        ),
        details={"agent": agent, "max_conversations": limit, "min_idle": min_idle},
    )
    error.retry_after = free_in
    return error
