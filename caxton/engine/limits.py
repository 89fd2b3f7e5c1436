"""Request limits on every route of the engine's API, and the JSON error body all refusals share.

``RequestLimits`` is an ASGI middleware that refuses, before any endpoint runs:

- headers over ``MAX_HEADERS`` in number or ``MAX_HEADER_BYTES`` in total
  (names + values): 431 ``headers_too_large``;
- a body over ``server.max_request_size`` (``server.max_apply_size`` for
  ``POST /api/v1/applies``), declared or streamed: 413 ``payload_too_large``;
- a body whose JSON nests deeper than ``MAX_JSON_DEPTH`` arrays/objects: 400
  ``json_too_deep`` (Python's parser would otherwise recurse into a
  RecursionError, and deep values reach the agents);
- a JSON body holding ``NaN``, ``Infinity`` or ``-Infinity`` (not standard
  JSON; Python would accept them and hand them to agents): 422
  ``invalid_input`` naming the constant and its path (``details.path``).

A body is read here once (bounded by its limit), checked, and handed on
unchanged. ``error_body`` is the shape of every engine error answer
(``{"error": {"code", "message", "hint"[, "details"]}}``); ``caxton.engine.http.app``
uses it for the errors its endpoints raise.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caxton.errors import CaxtonError, HeadersTooLarge, InvalidInput, PayloadTooLarge, TooDeep
from caxton.spec.jsonvalues import MAX_JSON_DEPTH, json_depth, non_finite

__all__ = ["MAX_HEADERS", "MAX_HEADER_BYTES", "MAX_JSON_DEPTH", "RequestLimits", "error_body", "error_response",
           "header_problem", "json_depth"]

MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024
def error_body(error: CaxtonError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": error.code, "message": error.message, "hint": error.hint}
    if error.details is not None:
        body["details"] = error.details
    return {"error": body}


def error_response(error: CaxtonError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.http_status, headers=headers)


def header_problem(headers: list[tuple[bytes, bytes]]) -> HeadersTooLarge | None:
    """Why these headers are refused, or None."""
    if len(headers) > MAX_HEADERS:
        return HeadersTooLarge(f"the request has {len(headers)} headers; the limit is {MAX_HEADERS}",
                               hint="send fewer headers")
    size = sum(len(name) + len(value) for name, value in headers)
    if size > MAX_HEADER_BYTES:
        return HeadersTooLarge(f"the request's headers take {size} bytes; the limit is {MAX_HEADER_BYTES}",
                               hint="send shorter headers (a cookie or token that large is not one Caxton made)")
    return None


class RequestLimits:
    """ASGI middleware: 431 for oversized headers, 413 for oversized bodies, 400 for too deep JSON, 422 for NaN."""

    def __init__(self, app: ASGIApp, limit: int, bulk: dict[str, int] | None = None,
                 max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.limit = limit
        self.bulk = bulk or {}
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = header_problem(scope["headers"])
        if problem is not None:
            await _refuse(problem, scope, send)
            return
        limit = self.bulk.get(scope["path"], self.limit)
        declared: int | None = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                if not value.isdigit():
                    break  # the server refuses a malformed length itself
                declared = int(value)
                if declared > limit:
                    await _refuse(self._too_large(scope, declared, limit), scope, send)
                    return
                break
        if declared == 0 or (declared is None and not _chunked(scope["headers"])):
            await self.app(scope, receive, send)
            return
        await self._checked(scope, receive, send, limit)

    async def _checked(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Read the body (up to ``limit``), check its JSON depth, then run the app on it."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await _refuse(self._too_large(scope, size, limit), scope, send)
                return
            more = bool(message.get("more_body", False))
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        depth = json_depth(body, self.max_depth)
        if depth > self.max_depth:
            await _refuse(TooDeep(f"the JSON body nests {depth} levels deep; the limit is {self.max_depth}",
                                  hint="flatten the request's arrays and objects"), scope, send)
            return
        constant = non_finite(body)
        if constant is not None:
            name, path = constant
            await _refuse(InvalidInput(f"the JSON body holds {name} at {path}: not standard JSON",
                                       hint="send a finite number, null or a string instead",
                                       details={"path": path}), scope, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self, scope: Scope, size: int, limit: int) -> PayloadTooLarge:
        key = "server.max_apply_size" if scope["path"] in self.bulk else "server.max_request_size"
        return PayloadTooLarge(f"request body of {size} bytes is over the limit of {limit} bytes",
                               hint=f"send less, or raise {key} in caxton.yaml")


def _chunked(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(key == b"transfer-encoding" for key, _ in headers)


async def _refuse(error: CaxtonError, scope: Scope, send: Send) -> None:
    await error_response(error)(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
