"""Engine URLs as people write them, normalised to the base URL the client builds requests on.

Every engine URL (``--engine``, ``CAXTON_ENGINE_URL``, caxton.yaml's
``environments.*.engines``) reaches ``EngineClient`` and goes through
``normalise``, the one place that decides what an engine URL is:

- a trailing ``/api/v1`` (what the server's banner prints) and trailing
  slashes are dropped: ``http://127.0.0.1:8080/api/v1/`` -> ``http://127.0.0.1:8080``;
- no scheme: a loopback host (``127.0.0.1:8080``, ``localhost:8080``,
  ``[::1]:8080``) gets ``http://``; any other host is refused, since guessing
  plain http could send the API token in clear to a remote machine;
- anything that is not ``http(s)://HOST[:PORT][/PREFIX]`` (another scheme, no
  host, a bad port, spaces, a query, credentials) is refused with what is
  wrong and how to write it.

``is_loopback`` tells whether a URL names this machine (``caxton.client.tls``
refuses plain http to any other). Pure: no I/O. Called by ``caxton.client.transport`` (and the CLI, to compare a
saved plan's engine with ``--engine``).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

from caxton.errors import InvalidInput

API_PREFIX = "/api/v1"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
HINT = "write the engine's address like http://127.0.0.1:8080 (in --engine, CAXTON_ENGINE_URL or caxton.yaml)"
_HOST = re.compile(r"[A-Za-z0-9.-]+")


def normalise(url: str) -> str:
    """The engine's base URL (scheme, host, port, optional prefix; no ``/api/v1``, no trailing slash)."""
    text = url.strip()
    if not text:
        raise InvalidInput("the engine URL is empty", hint=HINT)
    parts = _split(text if "://" in text else _with_scheme(text, url), url)
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)].rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc}{path}"


def is_loopback(url: str) -> bool:
    """Whether a normalised engine URL names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = urlsplit(url).hostname or ""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _with_scheme(text: str, url: str) -> str:
    """``HOST:PORT`` without a scheme: http:// for this machine, refused for any other host."""
    parts = _split("http://" + text, url)
    if parts.hostname in LOOPBACK:
        return "http://" + text
    raise InvalidInput(f"engine URL {url!r} has no scheme",
                       hint=f"write http://{text} or https://{text} (only a loopback address gets http:// implied)")


def _split(text: str, url: str) -> SplitResult:
    def refuse(why: str) -> InvalidInput:
        return InvalidInput(f"engine URL {url!r} is not usable: {why}", hint=HINT)

    if any(ch.isspace() for ch in text):
        raise refuse("it contains spaces")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise refuse(f"the scheme is {parts.scheme!r}; an engine speaks http:// or https://")
    host = parts.hostname or ""
    if not host:
        raise refuse("there is no host")
    if not (_HOST.fullmatch(host) or (":" in host and parts.netloc.count("[") == 1)):
        raise refuse(f"{host!r} is not a host name or address")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:
        raise refuse("the port is not a number from 0 to 65535") from None
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("the engine URL carries credentials (user:password@); they are not sent",
                           hint="drop user:password@ from the URL and pass the API token with --token or "
                           "CAXTON_API_TOKEN")
    if parts.query or parts.fragment:
        raise refuse("it has a query or fragment (?... or #...)")
    return parts
