"""How the client speaks TLS to an engine, and when it refuses plain http.

``TLSOptions`` comes from the environment (``CAXTON_CA_CERT``,
``CAXTON_CLIENT_CERT``, ``CAXTON_CLIENT_KEY``, ``CAXTON_INSECURE_HTTP``),
which the CLI's global ``--ca-cert``, ``--client-cert``, ``--client-key``
and ``--insecure-http`` options set (``caxton.cli.common``), so every
``EngineClient`` (CLI commands, plan, apply, the reconcile loop) agrees.

- ``https://``: the engine's certificate is checked against ``ca_cert`` (a
  PEM bundle; the public CA bundle when not given); ``client_cert`` and
  ``client_key`` answer an engine that requires client certificates (mTLS).
- ``http://`` to a host that is not this machine is refused before any
  connection unless ``insecure_http``: the token and the messages would
  cross the network in clear.
- ``explain`` turns a TLS failure of a connection into one line and a hint.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from caxton.client import urls
from caxton.errors import EngineUnreachable, InvalidInput

ENV_CA_CERT = "CAXTON_CA_CERT"
ENV_CLIENT_CERT = "CAXTON_CLIENT_CERT"
ENV_CLIENT_KEY = "CAXTON_CLIENT_KEY"
ENV_INSECURE_HTTP = "CAXTON_INSECURE_HTTP"
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class TLSOptions:
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    insecure_http: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TLSOptions:
        env = os.environ if env is None else env
        return cls(
            ca_cert=env.get(ENV_CA_CERT) or None,
            client_cert=env.get(ENV_CLIENT_CERT) or None,
            client_key=env.get(ENV_CLIENT_KEY) or None,
            insecure_http=env.get(ENV_INSECURE_HTTP, "").strip().lower() in _TRUE,
        )

    def verify(self, base_url: str) -> ssl.SSLContext | bool:
        """What httpx's ``verify`` gets for ``base_url`` (a normalised engine URL); may refuse it."""
        if base_url.startswith("http://"):
            if not self.insecure_http and not urls.is_loopback(base_url):
                host = urlsplit(base_url).hostname
                raise InvalidInput(
                    f"refusing plain http:// to {host}, which is not this machine: the API token and the "
                    "messages would cross the network unencrypted",
                    hint="use https:// (the engine's server.tls), or pass --insecure-http "
                    "(CAXTON_INSECURE_HTTP=1) if the network is trusted")
            return False  # no TLS context to build (loading the CA bundle costs ~50 ms)
        if (self.client_cert is None) != (self.client_key is None):
            raise InvalidInput("a client certificate needs both --client-cert and --client-key",
                               hint=f"pass both (or {ENV_CLIENT_CERT} and {ENV_CLIENT_KEY}), or neither")
        if self.ca_cert is None and self.client_cert is None:
            return True
        return self._context()

    def _context(self) -> ssl.SSLContext:
        what, path = "--ca-cert", self.ca_cert
        try:
            if self.ca_cert is not None:
                context = ssl.create_default_context(cafile=self.ca_cert)
            else:
                import certifi

                context = ssl.create_default_context(cafile=certifi.where())
            if self.client_cert is not None:
                what, path = "--client-cert/--client-key", self.client_cert
                context.load_cert_chain(self.client_cert, self.client_key)
        except (OSError, ssl.SSLError) as error:
            raise InvalidInput(f"cannot load {what} {path}: {error.strerror or error}",
                               hint="pass readable PEM files (the CA that signed the engine's certificate; "
                               "a client certificate with its key)") from None
        return context


def explain(error: BaseException, base_url: str, *, disconnected: bool = False) -> EngineUnreachable | None:
    """One clear error for a connection that failed in TLS (None when TLS was not the cause).

    ``disconnected``: the engine closed the connection without answering; over https, that is how an
    engine that requires a client certificate (mTLS, TLS 1.3) usually refuses a missing or foreign one.
    """
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = cause.verify_message or "certificate verify failed"
        return EngineUnreachable(
            f"certificate verify failed for the engine at {base_url}: {reason}",
            hint=f"pass the CA that signed the engine's certificate with --ca-cert or {ENV_CA_CERT}")
    if cause is not None:
        reason = (cause.reason or str(cause)).replace("_", " ").lower()
    elif disconnected and base_url.startswith("https://"):
        reason = f"the engine closed the connection without answering ({error or type(error).__name__})"
    else:
        return None
    return EngineUnreachable(
        f"TLS handshake with the engine at {base_url} failed: {reason}",
        hint="if the engine requires client certificates (server.tls.client_ca_file), pass --client-cert and "
        f"--client-key ({ENV_CLIENT_CERT}, {ENV_CLIENT_KEY}) signed by its client CA; check --ca-cert too")
