"""Text in and out of the memory: what gets embedded, what a prompt sees.

Pure functions used by :mod:`caxton.memory.service`: the text embedded for an
entity, the ``memory_context`` rendered into a config agent's prompt, and the
observation recorded for one request/response exchange.
"""

from __future__ import annotations

from collections.abc import Sequence

from caxton.memory import models

CONVERSATION_TYPE = "conversation"
#: Exchanges kept on one conversation entity (older ones are dropped).
KEEP_EXCHANGES = 50
#: Characters of observations embedded per entity (the model reads <= 256 tokens anyway).
EMBED_CHARS = 1200
#: Observations and characters rendered per entity into a prompt.
RENDER_OBSERVATIONS = 3
RENDER_CHARS = 600


def embedding_text(name: str, entity_type: str, observations: Sequence[str]) -> str:
    """Name, type and the most recent observations that fit ``EMBED_CHARS``, oldest first."""
    kept: list[str] = []
    budget = EMBED_CHARS
    for observation in reversed(observations):
        if budget <= 0:
            break
        kept.append(observation[:budget])
        budget -= len(observation) + 1
    return f"{name} ({entity_type}): " + " ".join(reversed(kept))


def conversation_name(agent: str, conversation_id: str | None) -> str:
    return f"conversation:{agent}:{conversation_id or '-'}"


def exchange(request: str, response: str, max_bytes: int) -> str:
    """One observation for a request/response pair, cut to ``max_bytes`` UTF-8 bytes."""
    text = f"request: {request.strip()}\nresponse: {response.strip()}"
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max(0, max_bytes - 3)].decode("utf-8", errors="ignore") + "..."


def render(hits: Sequence[models.SearchHit]) -> str:
    """The ``memory_context`` block: one entry per entity, best first; empty when no hits."""
    blocks = []
    for hit in hits:
        entity = hit.entity
        lines = [f"- {entity.name} ({entity.entity_type}, similarity {hit.similarity:.2f})"]
        for observation in entity.observations[-RENDER_OBSERVATIONS:]:
            text = observation if len(observation) <= RENDER_CHARS else observation[:RENDER_CHARS] + "..."
            lines.append("  " + text.replace("\n", "\n  "))
        blocks.append("\n".join(lines))
    return "\n".join(blocks)
