"""What the config-agent runtime needs of a conversation history: a turn and the store's Protocol.

The engine implements it (``caxton.engine.serving.conversations``: in memory, or
durable in the engine's database) and hands one store to every config-agent runtime.

A message's turns are the user turn, then for each tool round the assistant turn
asking for calls (``tool_calls``, OpenAI shape) and one ``tool`` turn per call
(``tool_call_id``), then the final assistant turn. A ``tool`` turn is only sent to a
model after its assistant turn: every bound drops a history from its front and then
skips to a user turn (``from_user``, the prompt window) or past the rest of a tool
exchange (``in_tool_exchange``, the engine's stores).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, NotRequired, Protocol, TypedDict


class Turn(TypedDict):
    """One message of a conversation, as providers see it (templates see user and answer turns only)."""

    role: Literal["user", "assistant", "tool"]
    content: str
    #: On an assistant turn that asked for tools: ``[{"id", "type": "function", "function": {name, arguments}}]``.
    tool_calls: NotRequired[list[dict[str, Any]]]
    #: On a ``tool`` turn: the id of the call it answers.
    tool_call_id: NotRequired[str]


def text_size(text: str) -> int:
    """UTF-8 bytes of ``text`` (a lone surrogate counts as 3): what history and prompt bounds count."""
    return len(text.encode("utf-8", "surrogatepass"))


def turn_size(turn: Turn) -> int:
    """Bytes of a turn for the history and prompt bounds: its content, plus its calls or call id."""
    size = text_size(turn["content"])
    if "tool_calls" in turn:
        size += text_size(json.dumps(turn["tool_calls"], ensure_ascii=False, separators=(",", ":")))
    if "tool_call_id" in turn:
        size += text_size(turn["tool_call_id"])
    return size


def in_tool_exchange(turn: Turn) -> bool:
    """A ``tool`` turn, or an assistant turn asking for calls (not a user question or a final answer)."""
    return turn["role"] == "tool" or bool(turn.get("tool_calls"))


def from_user(turns: Sequence[Turn]) -> list[Turn]:
    """``turns`` from their first user turn (a reply or a tool exchange without its question is left out)."""
    start = next((i for i, turn in enumerate(turns) if turn["role"] == "user"), len(turns))
    return list(turns[start:])


def dialogue(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The user questions and final answers of ``turns`` (a template's ``history``: no tool exchanges)."""
    return [{"role": t["role"], "content": t["content"]} for t in turns if not in_tool_exchange(t)]


def copy(turn: Turn) -> Turn:
    """A copy of ``turn`` that shares nothing mutable with it."""
    made = Turn(role=turn["role"], content=turn["content"])
    if "tool_calls" in turn:
        made["tool_calls"] = json.loads(json.dumps(turn["tool_calls"]))
    if "tool_call_id" in turn:
        made["tool_call_id"] = turn["tool_call_id"]
    return made


class ConversationStore(Protocol):
    """Where config agents keep the history of each conversation. Thread-safe."""

    def begin(self, agent: str, conversation_id: str, *, limit: int) -> bool:
        """Open the conversation if new (True) or touch it (False); it is busy until ``finish``.

        When it is new and ``agent`` already has ``limit`` open conversations,
        closes the least recently used idle one (see the engine's store), else raises
        ``errors.TooManyConversations``. Check and insert are atomic.
        """
        ...

    def finish(self, agent: str, conversation_id: str) -> None:
        """The message ``begin`` started is done (answered or failed): the conversation may go idle."""
        ...

    def history(self, agent: str, conversation_id: str) -> list[Turn]:
        """A copy of the turns so far, oldest first ([] for an unknown conversation); never starts inside
        a tool exchange."""
        ...

    def append(self, agent: str, conversation_id: str, turns: Sequence[Turn]) -> None:
        """Add turns at the end (atomically, so one message's turns stay together)."""
        ...

    def end(self, agent: str, conversation_id: str) -> None:
        """Forget one conversation (no error if unknown)."""
        ...

    def count(self, agent: str) -> int:
        """Open conversations of ``agent``."""
        ...

    def clear(self, agent: str) -> None:
        """Forget every conversation of ``agent`` (the agent was removed)."""
        ...
