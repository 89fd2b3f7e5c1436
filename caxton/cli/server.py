"""``caxton server start``: run the engine (store, runtimes, HTTP API) in the foreground.

Thin: resolves the settings (flags > CAXTON_* env > caxton.yaml > defaults)
with ``caxton.engine.config.server_settings`` and hands over to
``caxton.engine.server.serve``, whose return value is the exit code. The
options that choose the engine's settings are shared with ``caxton up``
(``caxton.cli.common``), so both resolve them the same way.
"""

from __future__ import annotations

import typer

from caxton.cli.common import EngineConfigOption, EngineDataDirOption, HostOption, InsecureOption, PortOption
from caxton.errors import CaxtonError

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
    config: EngineConfigOption = None,
    data_dir: EngineDataDirOption = None,
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
