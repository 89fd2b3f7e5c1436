"""Blue-green preview checks: a message sent to the candidate before any traffic is.

Called by the rollout controller when it enters a step with ``checks``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from caxton.engine.serving.runtime import ServingRuntime
from caxton.errors import CaxtonError


def check(serving: ServingRuntime, message: Any, expect: str | None) -> str | None:
    """None if the candidate answers ``message`` (containing ``expect``), else what went wrong."""
    if not serving.acquire():
        return "the revision is draining"
    try:
        reply = serving.handle({"id": uuid.uuid4().hex, "agent": serving.agent_id, "revision": serving.revision,
                                "conversation_id": None, "content": message})
    except CaxtonError as error:
        return f"{error.code}: {error.message}"
    except Exception as error:  # noqa: BLE001 - the check reports it
        return f"{type(error).__name__}: {error}"
    finally:
        serving.release()
    text = reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False, separators=(",", ":"))
    if expect is not None and expect not in text:
        return f"the reply does not contain {expect!r}: {text[:200]}"
    return None
