"""What the config-agent runtime needs of a conversation history: a turn and the store's Protocol.

The engine implements it (``caxton.engine.serving.conversations``: in memory, or
durable in the engine's database) and hands one store to every config-agent runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, TypedDict


class Turn(TypedDict):
    """One message of a conversation, as templates and providers see it."""

    role: Literal["user", "assistant"]
    content: str


def text_size(text: str) -> int:
    """UTF-8 bytes of ``text`` (a lone surrogate counts as 3): what history and prompt bounds count."""
    return len(text.encode("utf-8", "surrogatepass"))


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
        """A copy of the turns so far, oldest first ([] for an unknown conversation)."""
        ...

    def append(self, agent: str, conversation_id: str, turns: Sequence[Turn]) -> None:
        """Add turns at the end (atomically, so a user/assistant pair stays together)."""
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
