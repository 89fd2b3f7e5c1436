"""``caxton server start``: run the engine (store, runtimes, HTTP API) in the foreground.

Thin: resolves the settings (flags > CAXTON_* env > caxton.yaml > defaults)
with ``caxton.engine.config.server_settings`` and hands over to
``caxton.engine.server.serve``, whose return value is the exit code. The
options that choose the engine's settings are defined here once and shared
with ``caxton up`` (``caxton.cli.up``), so both resolve them the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caxton.errors import CaxtonError

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="caxton.yaml to read (default: $CAXTON_CONFIG, else ./caxton.yaml if present).",
    show_default=False)]
DataDirOption = Annotated[Path | None, typer.Option(
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

app = typer.Typer(help="Run the Caxton engine.", no_args_is_help=True)

#: Import names of the ``engine`` extra (pyproject.toml); the toolchain runs without them.
ENGINE_MODULES = ("fastapi", "uvicorn", "wasmtime", "onnxruntime", "tokenizers", "numpy", "sqlite_vec",
                  "prometheus_client")


def require_engine() -> None:
    """Refuse to start an engine when the ``engine`` extra is not installed (one line, exit 1)."""
    import importlib.util

    missing = [name for name in ENGINE_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise CaxtonError("the engine is not installed: pip install 'caxton[engine]'",
                          hint=f"missing: {', '.join(missing)}; validate, plan, apply and reconcile run without it")


@app.command("start")
def start(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    host: HostOption = None,
    port: PortOption = None,
    insecure_no_auth: InsecureOption = False,
) -> int:
    """Start the engine and serve its API until SIGTERM (drains in-flight messages, exits 0); SIGHUP reloads."""
    require_engine()
    from caxton.engine import config as engine_config
    from caxton.engine import server

    settings = engine_config.server_settings(config, host=host, port=port, data_dir=data_dir)
    engine = server.Engine(settings.config, settings.data_dir)
    return server.serve(engine, host=settings.config.server.host, port=settings.config.server.port,
                        settings=lambda: engine_config.server_settings(config, host=host, port=port,
                                                                       data_dir=data_dir).config,
                        insecure_no_auth=insecure_no_auth)
