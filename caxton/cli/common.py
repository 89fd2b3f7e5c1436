"""Options and output helpers shared by every command."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from caxton.desired.loader import Options

DEFAULT_ENGINE_URL = "http://127.0.0.1:8080"


class Output(str, Enum):
    text = "text"
    json = "json"


EngineOption = Annotated[
    str,
    typer.Option("--engine", envvar="CAXTON_ENGINE_URL", help="URL of the Caxton engine API."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="CAXTON_API_TOKEN", help="API token for mutating endpoints.", show_default=False),
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]
NameArgument = Annotated[str, typer.Argument(help="Agent name (any case).")]

# Global TLS options (``caxton --ca-cert ca.pem agents list``): given on the command line or in the
# environment, they end up in the environment, where every EngineClient reads them (caxton.client.tls).
CACertOption = Annotated[
    str | None,
    typer.Option("--ca-cert", envvar="CAXTON_CA_CERT", metavar="PEM", show_default=False,
                 help="CA bundle that signed the engine's certificate (https:// engines)."),
]
ClientCertOption = Annotated[
    str | None,
    typer.Option("--client-cert", envvar="CAXTON_CLIENT_CERT", metavar="PEM", show_default=False,
                 help="Client certificate for an engine that requires one (mTLS); with --client-key."),
]
ClientKeyOption = Annotated[
    str | None,
    typer.Option("--client-key", envvar="CAXTON_CLIENT_KEY", metavar="PEM", show_default=False,
                 help="Private key of --client-cert."),
]
InsecureHttpOption = Annotated[
    bool,
    typer.Option("--insecure-http", envvar="CAXTON_INSECURE_HTTP",
                 help="Allow plain http:// to an engine on another machine (token and messages unencrypted)."),
]


def set_engine_default(directory: Path | None = None) -> None:
    """The engine of commands given neither ``--engine`` nor ``CAXTON_ENGINE_URL``: ./caxton.yaml's
    ``defaults.engine``, else the first engine of its ``defaults.environment`` (else the built-in default).

    Handed over through ``CAXTON_ENGINE_URL`` (``caxton.cli.main`` restores it after the command).
    An invalid caxton.yaml sets nothing: ``caxton validate`` says what is wrong with it.
    """
    import os

    path = (directory or Path.cwd()) / "caxton.yaml"
    if os.environ.get("CAXTON_ENGINE_URL") or not path.is_file():
        return
    from caxton.validation import pipeline

    try:
        project, _ = pipeline.validate_project(str(path), path.read_bytes())
    except OSError:
        return
    if project is None:
        return
    defaults = project.defaults
    environment = project.environments.get(defaults.environment) if defaults.environment else None
    url = defaults.engine or (environment.engines[0] if environment is not None else None)
    if url:
        os.environ["CAXTON_ENGINE_URL"] = url


def set_tls_environment(ca_cert: str | None, client_cert: str | None, client_key: str | None,
                        insecure_http: bool) -> None:
    """Hand the global TLS options to every EngineClient of this process (and its children)."""
    import os

    for name, value in (("CAXTON_CA_CERT", ca_cert), ("CAXTON_CLIENT_CERT", client_cert),
                        ("CAXTON_CLIENT_KEY", client_key)):
        if value:
            os.environ[name] = value
    if insecure_http:
        os.environ["CAXTON_INSECURE_HTTP"] = "1"


def emit_json(value: Any) -> None:
    """Write one JSON document to stdout (wire models as the engine sent them: ``caxton.spec.api.wire``)."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(value: object) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        from caxton.spec.api import wire

        return wire(value)
    return str(value)


def echo(text: str = "") -> None:
    """A result line to stdout."""
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    """A diagnostic line to stderr."""
    sys.stderr.write(text + "\n")


def load_options(*, cache: bool = True) -> Options:
    """How CLI commands load desired state: cached per-file results, one worker process per core."""
    from caxton.desired import loader, workers

    return loader.Options(cache=cache, jobs=workers.default_jobs())


def default_project() -> str:
    """The default PATH of validate, plan and apply: the current directory, when it is a project."""
    require_project(Path("."), hint="run in a desired-state repository (start one with `caxton init`) "
                    "or pass the directory (e.g. agents/)")
    return "."


def require_project(directory: Path, *, hint: str) -> None:
    """Refuse a directory with neither caxton.yaml nor agents/ (the wrong directory, most likely)."""
    from caxton.errors import InvalidInput

    if (directory / "caxton.yaml").is_file() or (directory / "agents").is_dir():
        return
    where = "here" if directory == Path(".") else f"in {directory}"
    raise InvalidInput(f"no caxton.yaml or agents/ directory {where}", hint=hint)
