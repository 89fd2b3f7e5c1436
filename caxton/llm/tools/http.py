"""The ``http_client`` built-in: GET or POST to a host on the agent's ``security_policy.allowed_hosts``.

Only ``http`` and ``https``; redirects are followed (at most ``MAX_REDIRECTS``) only to
allowed hosts; the response body is read up to ``MAX_RESPONSE_SIZE`` bytes (past it the
call fails ``too_large``); the whole call ends by its deadline (``tool_call_timeout``).
No environment proxies. httpx is imported on the first call.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urljoin, urlsplit

from caxton import errors
from caxton.llm.tools.base import FunctionTool, JsonValue, Tool, ToolContext
from caxton.rules.hosts import host_allowed
from caxton.spec.tools import BUILTIN_TOOLS

MAX_RESPONSE_SIZE = 1024 * 1024
MAX_REQUEST_BODY = 256 * 1024
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "method": {"enum": ["GET", "POST"], "default": "GET"},
        "url": {"type": "string", "pattern": "^https?://", "maxLength": 4096},
        "headers": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 4096},
                    "maxProperties": 20},
        "body": {"description": "POST body: a string is sent as is, any other JSON value as JSON"},
    },
    "required": ["url"],
}


def http_client(context: ToolContext) -> Tool:
    def run(arguments: dict[str, Any], deadline: float) -> JsonValue:
        return fetch(context.allowed_hosts, arguments, deadline)

    return FunctionTool("http_client", BUILTIN_TOOLS["http_client"], PARAMETERS, run)


def fetch(allowed: tuple[str, ...], arguments: dict[str, Any], deadline: float) -> JsonValue:
    import httpx

    method = arguments.get("method", "GET")
    url = arguments["url"]
    body = arguments.get("body")
    content = body.encode("utf-8") if isinstance(body, str) else None
    json_body = body if body is not None and not isinstance(body, str) else None
    if len(content or b"") > MAX_REQUEST_BODY:
        raise errors.ToolFailure(f"the body is over {MAX_REQUEST_BODY:,} bytes", reason="invalid_arguments")
    if method == "GET" and body is not None:
        raise errors.ToolFailure("a GET has no body", reason="invalid_arguments", hint="use POST to send a body")
    with httpx.Client(trust_env=False, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            _check_host(url, allowed)
            budget = deadline - time.monotonic()
            if budget <= 0:
                raise errors.ToolFailure(f"no answer from {url} in time", reason="timeout")
            try:
                with client.stream(method, url, headers=arguments.get("headers") or {}, content=content,
                                   json=json_body, timeout=budget) as response:
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        if response.status_code == 303 or method == "GET":
                            method, content, json_body = "GET", None, None
                        continue
                    raw = _read(response, url)
                    return {"status": response.status_code, "url": url,
                            "content_type": response.headers.get("content-type", ""),
                            "body": raw.decode(response.encoding or "utf-8", "replace")}
            except httpx.TimeoutException:
                raise errors.ToolFailure(f"no answer from {url} in time", reason="timeout") from None
            except httpx.HTTPError as exc:
                raise errors.ToolFailure(f"cannot reach {url}: {exc or type(exc).__name__}",
                                         reason="failed") from None
    raise errors.ToolFailure(f"more than {MAX_REDIRECTS} redirects", reason="failed")


def _check_host(url: str, allowed: tuple[str, ...]) -> None:
    if not host_allowed(url, allowed):
        raise errors.ToolFailure(
            f"{urlsplit(url).netloc or url!r} is not on this agent's allowed hosts", reason="not_allowed",
            hint="list the host in the agent file's security_policy.allowed_hosts",
        )


def _read(response: Any, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_SIZE:
            raise errors.ToolFailure(f"{url} answered more than {MAX_RESPONSE_SIZE:,} bytes", reason="too_large")
        chunks.append(chunk)
    return b"".join(chunks)
