"""Options and output helpers shared by every command."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from caxton.client.transport import EngineClient
    from caxton.desired.loader import Options

DEFAULT_ENGINE_URL = "http://127.0.0.1:8080"


class Output(str, Enum):
    text = "text"
    json = "json"


class PlanFormat(str, Enum):
    """How ``caxton plan`` and ``caxton show`` print a plan."""

    text = "text"
    json = "json"
    markdown = "markdown"


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

# --- plan, apply, show ---
RefOption = Annotated[str | None, typer.Option("--ref", help="Plan DIR as it is at this git revision.")]
NoPruneOption = Annotated[bool, typer.Option("--no-prune", help="Never delete agents missing from the desired state.")]
AllowDeleteAllOption = Annotated[
    bool, typer.Option("--allow-delete-all", help="Allow a plan that deletes every agent on the engine.")
]
PlanFormatOption = Annotated[PlanFormat, typer.Option(
    "--output", "-o", help="Output format: text, the plan JSON, or markdown (for a pull-request comment or "
    "$GITHUB_STEP_SUMMARY).")]
TargetOption = Annotated[list[str] | None, typer.Option(
    "--target", metavar="AGENT", show_default=False,
    help="Plan only this agent (repeatable); changes to other agents are left out.")]

# --- the reconcile loop (reconcile, up) ---
SourceOption = Annotated[str, typer.Option(
    "--source", help="Local directory, git work tree, or git URL (cloned into --data-dir).")]
BranchOption = Annotated[str | None, typer.Option(
    "--branch", help="Branch to track (default: the work tree's current branch; main for a URL).",
    show_default=False)]
PathOption = Annotated[str | None, typer.Option(
    "--path", help="Directory of the agents inside the source (default: caxton.yaml's agents_dir or agents/).",
    show_default=False)]
IntervalOption = Annotated[str, typer.Option(
    "--interval", help="Re-check (fetch, heal drift) every this long, jittered.")]
PollOption = Annotated[str, typer.Option(
    "--poll-interval", help="How often a local git branch is checked for new commits.")]
CloneDirOption = Annotated[Path, typer.Option("--data-dir", help="Where a git URL is cloned (DATA_DIR/sources/).")]
UncommittedOption = Annotated[bool, typer.Option(
    "--uncommitted", help="Apply a git work tree's files as they are on disk (watched), not its branch.")]

# --- the engine's settings (server start, up) ---
EngineConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="caxton.yaml to read (default: $CAXTON_CONFIG, else ./caxton.yaml if present).",
    show_default=False)]
EngineDataDirOption = Annotated[Path | None, typer.Option(
    "--data-dir", help="Directory of the engine's database (default: $CAXTON_DATA_DIR, caxton.yaml server.data_dir, "
    "else .caxton).", show_default=False)]
HostOption = Annotated[str | None, typer.Option(
    "--host", help="Address to bind (default: $CAXTON_HOST, caxton.yaml server.host, else 127.0.0.1).",
    show_default=False)]
PortOption = Annotated[int | None, typer.Option(
    "--port", help="Port to listen on (default: $CAXTON_PORT, caxton.yaml server.port, else 8080; 0 picks a free "
    "one).", show_default=False)]
InsecureOption = Annotated[bool, typer.Option(
    "--insecure-no-auth", help="Serve a non-loopback address with no token configured (anyone who reaches it can "
    "drive the engine).")]

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


def echo(text: str = "") -> None:
    """A result line to stdout."""
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    """A diagnostic line to stderr."""
    sys.stderr.write(text + "\n")


def connect(engine: str, token: str | None, *, timeout: float = 30.0) -> EngineClient:
    """The client of ``engine`` (imported here, when a command needs one: the CLI starts faster without it)."""
    from caxton.client.transport import EngineClient

    return EngineClient(engine, token=token, timeout=timeout)


def seconds(value: str, option: str) -> float:
    """A duration option's value (500ms, 5s, 2m) in seconds; InvalidInput naming ``option`` otherwise."""
    from caxton.errors import InvalidInput
    from caxton.spec.units import parse_duration

    try:
        return float(parse_duration(value))
    except (ValueError, TypeError) as error:
        raise InvalidInput(f"{option} {value!r} is not a duration: {error}", hint="e.g. 500ms, 5s, 2m") from None


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
