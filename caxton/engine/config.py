"""The engine's settings: flags > ``CAXTON_*`` environment > ``caxton.yaml`` > defaults.

``load`` reads the file (``--config``, else ``CAXTON_CONFIG``, else
``./caxton.yaml`` when present), overlays the environment and then the
command-line flags, and validates the result as ``ProjectConfig``; a file
that does not validate is one error listing every problem at ``file:line``:
keys Caxton knows but does not build with what to use instead
(``caxton.spec.refused``), unknown keys with the closest known one, bad
values. A relative ``server.data_dir``, ``security.tokens_file`` or
``logging.file`` from the file is resolved against the file's directory;
from a flag or the environment, against the working directory.
``server_settings`` is the one resolution of ``caxton server start``
(``caxton.cli.server``) and ``caxton up`` (``caxton.cli.up``): their
``--host``/``--port``/``--data-dir`` flags (``None`` when not given) over ``load``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic_core import ErrorDetails

from caxton.errors import InvalidInput, ValidationFailed
from caxton.rules import models, suggest
from caxton.spec import refused as refused_keys
from caxton.spec.project import ProjectConfig

DEFAULT_CONFIG = "caxton.yaml"

#: Environment variable -> path of the key in caxton.yaml (section, [subsection,] key).
ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "CAXTON_HOST": ("server", "host"),
    "CAXTON_PORT": ("server", "port"),
    "CAXTON_DATA_DIR": ("server", "data_dir"),
    "CAXTON_MAX_REQUEST_SIZE": ("server", "max_request_size"),
    "CAXTON_MAX_MESSAGE_SIZE": ("server", "max_message_size"),
    "CAXTON_DRAIN_TIMEOUT": ("server", "drain_timeout"),
    "CAXTON_API_TOKEN": ("security", "api_token"),
    "CAXTON_TOKENS_FILE": ("security", "tokens_file"),
    "CAXTON_LOG_LEVEL": ("logging", "level"),
    "CAXTON_LOG_FORMAT": ("logging", "format"),
    "CAXTON_METRICS_PORT": ("observability", "metrics_port"),
    "CAXTON_MEMORY_ENABLED": ("memory", "enabled"),
    "CAXTON_STORE_URL": ("store", "url"),
    # TLS (issue 12)
    "CAXTON_TLS_CERT_FILE": ("server", "tls", "cert_file"),
    "CAXTON_TLS_KEY_FILE": ("server", "tls", "key_file"),
    "CAXTON_TLS_CLIENT_CA_FILE": ("server", "tls", "client_ca_file"),
}


@dataclass(frozen=True)
class EngineSettings:
    """The validated configuration, the data directory it resolves to, and the file it came from."""

    config: ProjectConfig
    data_dir: Path
    config_path: Path | None


def load(
    config_path: Path | None = None,
    *,
    flags: Mapping[tuple[str, ...], Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> EngineSettings:
    """Build the engine's settings; ``flags`` maps (section, key) paths to values given on the command line."""
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    path = _config_path(config_path, env, cwd)
    data = _read(path) if path else {}
    from_file = data.get("server", {}).get("data_dir") if isinstance(data.get("server"), dict) else None
    overlay = {key: env[name] for name, key in ENVIRONMENT.items() if env.get(name, "") != ""}
    overlay.update({key: value for key, value in (flags or {}).items() if value is not None})
    for path_of_key, value in overlay.items():
        _put(data, path_of_key, value)
    config = _validate(data, path, overridden=set(overlay))
    config = _resolve_files(config, path, set(overlay), cwd)
    config = _resolve_tls(config, path, set(overlay), cwd)
    base = path.parent if path and ("server", "data_dir") not in overlay and from_file else cwd
    data_dir = Path(config.server.data_dir).expanduser()
    return EngineSettings(config, data_dir if data_dir.is_absolute() else (base / data_dir), path)


def server_settings(
    config_path: Path | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    data_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> EngineSettings:
    """The settings of a command that starts an engine; a flag left ``None`` defers to env, file, default."""
    flags: dict[tuple[str, ...], Any] = {
        ("server", "host"): host,
        ("server", "port"): port,
        ("server", "data_dir"): str(data_dir) if data_dir is not None else None,
    }
    return load(config_path, flags=flags, env=env, cwd=cwd)


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set ``data[a][b]...[key] = value``, replacing anything in the way that is not a mapping."""
    node = data
    for name in path[:-1]:
        if not isinstance(node.get(name), dict):
            node[name] = {}
        node = node[name]
    node[path[-1]] = value


def _resolve_tls(
    config: ProjectConfig, path: Path | None, overridden: set[tuple[str, ...]], cwd: Path,
) -> ProjectConfig:
    """Relative ``server.tls`` files: from caxton.yaml, relative to it; from the environment, to ``cwd``."""
    tls = config.server.tls
    update: dict[str, str] = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        given = getattr(tls, key)
        if given and not Path(given).expanduser().is_absolute():
            base = path.parent if path is not None and ("server", "tls", key) not in overridden else cwd
            update[key] = str(base / Path(given).expanduser())
    if not update:
        return config
    server = config.server.model_copy(update={"tls": tls.model_copy(update=update)})
    return config.model_copy(update={"server": server})


def _resolve_files(config: ProjectConfig, path: Path | None, overridden: set[tuple[str, ...]], cwd: Path,
                   ) -> ProjectConfig:
    """A relative ``security.tokens_file`` or ``logging.file`` from the file is relative to it; else to ``cwd``."""
    for section, key in (("security", "tokens_file"), ("logging", "file")):
        part = getattr(config, section)
        given = getattr(part, key)
        if not given or Path(given).expanduser().is_absolute():
            continue
        base = path.parent if path is not None and (section, key) not in overridden else cwd
        config = config.model_copy(update={section: part.model_copy(update={key: str(base / given)})})
    return config


def _config_path(given: Path | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    if given is not None:
        if not given.is_file():
            raise InvalidInput(f"config file {given} does not exist", hint="pass an existing caxton.yaml to --config")
        return given
    if env.get("CAXTON_CONFIG"):
        named = Path(env["CAXTON_CONFIG"])
        if not named.is_file():
            raise InvalidInput(f"config file {named} (CAXTON_CONFIG) does not exist",
                               hint="unset CAXTON_CONFIG or point it to a caxton.yaml")
        return named
    default = cwd / DEFAULT_CONFIG
    return default if default.is_file() else None


def _read(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InvalidInput(f"{where}: invalid YAML: {error.problem}", hint="fix the YAML syntax") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InvalidInput(f"cannot read {path}: {error}", hint="check the file") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InvalidInput(f"{path}: the top level must be a mapping", hint="see docs for caxton.yaml")
    return loaded


def _validate(data: dict[str, Any], path: Path | None, *, overridden: set[tuple[str, ...]]) -> ProjectConfig:
    """The config, or one error listing every problem: refused keys (with what to use instead), unknown keys
    (with a did-you-mean), bad values; each at ``file:line`` when it comes from the file."""
    try:
        return ProjectConfig.model_validate(data)
    except pydantic.ValidationError as error:
        problems = [_problem(item, path, overridden) for item in error.errors(include_url=False)]
    lines = [f"{p['where']}: {p['loc'] + ': ' if p['loc'] else ''}{p['message']}" for p in problems]
    refused = any(p["refused"] for p in problems)
    hint = ("remove or replace each key named (docs/operations.md, configuration reference)" if refused
            else "fix caxton.yaml, the CAXTON_* environment variables or the flags")
    if len(lines) == 1:
        raise ValidationFailed(lines[0], hint=hint, details=problems)
    source = str(path) if path else "settings"
    raise ValidationFailed(f"{source}: {len(lines)} problems:\n  " + "\n  ".join(lines), hint=hint,
                           details=problems)


def _problem(item: ErrorDetails, path: Path | None, overridden: set[tuple[str, ...]]) -> dict[str, Any]:
    loc = [part for part in item["loc"]]
    dotted = ".".join(str(part) for part in loc)
    message, refused = str(item["msg"]).removeprefix("Value error, "), False
    if item["type"] == "extra_forbidden":
        advice = refused_keys.advice(loc)
        refused = advice is not None
        message = advice or _unknown(loc)
    line = _line_of(path, loc) if path and tuple(loc[:2]) not in overridden else None
    where = (f"{path}:{line}" if line else str(path)) if path else "settings"
    return {"loc": dotted, "message": message, "where": where, "refused": refused}


def _unknown(loc: list[int | str]) -> str:
    """``unknown key``, with the closest known key of its section when one is close."""
    owner = models.model_at(ProjectConfig, tuple(loc[:-1]))
    names = list(owner.model_fields) if owner is not None else []
    close = suggest.closest(str(loc[-1]), names)
    known = f"; did you mean {close!r}?" if close else (f"; known keys: {', '.join(sorted(names))}" if names else "")
    return "unknown key" + known


def _line_of(path: Path, loc: list[int | str]) -> int | None:
    """The 1-based line of the key (or item) at ``loc`` in the YAML file, or of its deepest written parent."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next(((key, value) for key, value in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = (node.value[part], node.value[part])
        if child is None:
            break
        line = child[0].start_mark.line + 1
        node = child[1]
    return line
