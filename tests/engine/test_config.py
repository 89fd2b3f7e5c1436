"""Engine settings: flags > CAXTON_* environment > caxton.yaml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from caxton.engine import config
from caxton.errors import InvalidInput, ValidationFailed


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "project" / "caxton.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    settings = config.load(env={}, cwd=tmp_path)
    assert (settings.config.server.host, settings.config.server.port) == ("127.0.0.1", 8080)
    assert settings.data_dir == tmp_path / ".caxton" and settings.config_path is None


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = _file(tmp_path, "server:\n  port: 9000\n  host: 127.0.0.2\n  data_dir: state\nsecurity:\n  api_token: file\n")
    from_file = config.load(path, env={}, cwd=tmp_path)
    assert from_file.config.server.port == 9000 and from_file.config.security.api_token == "file"
    assert from_file.data_dir == path.parent / "state"  # relative to the file

    env = {"CAXTON_PORT": "9100", "CAXTON_API_TOKEN": "env", "CAXTON_DATA_DIR": "envdir"}
    from_env = config.load(path, env=env, cwd=tmp_path)
    assert from_env.config.server.port == 9100 and from_env.config.security.api_token == "env"
    assert from_env.config.server.host == "127.0.0.2" and from_env.data_dir == tmp_path / "envdir"

    flags = {("server", "port"): 9200, ("server", "host"): None}
    from_flags = config.load(path, env=env, flags=flags, cwd=tmp_path)
    assert from_flags.config.server.port == 9200 and from_flags.config.server.host == "127.0.0.2"


def test_config_found_through_caxton_config_or_the_working_directory(tmp_path: Path) -> None:
    path = _file(tmp_path, "server:\n  port: 9001\n")
    assert config.load(env={"CAXTON_CONFIG": str(path)}, cwd=tmp_path).config.server.port == 9001
    assert config.load(env={}, cwd=path.parent).config.server.port == 9001


def test_bad_settings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"caxton.yaml:\d+:\d+: invalid YAML"):
        config.load(_file(tmp_path, "server:\n  port: [9000\n"), env={}, cwd=tmp_path)
    with pytest.raises(ValidationFailed, match="server.port"):
        config.load(_file(tmp_path, "server:\n  port: 99999\n"), env={}, cwd=tmp_path)
    with pytest.raises(ValidationFailed, match="server.port"):
        config.load(env={"CAXTON_PORT": "eighty"}, cwd=tmp_path)
    with pytest.raises(InvalidInput, match="does not exist"):
        config.load(tmp_path / "missing.yaml", env={}, cwd=tmp_path)


def test_store_url_from_the_file_and_caxton_store_url_wins(tmp_path: Path) -> None:
    path = _file(tmp_path, "store:\n  url: postgresql://caxton@db-file/caxton\n")
    assert config.load(path, env={}, cwd=tmp_path).config.store.url == "postgresql://caxton@db-file/caxton"
    env = {"CAXTON_STORE_URL": "postgresql://caxton:pw@db-env:5433/caxton?sslmode=require"}
    assert config.load(path, env=env, cwd=tmp_path).config.store.url == env["CAXTON_STORE_URL"]
    assert config.load(env={}, cwd=tmp_path).config.store.url is None  # default: the embedded SQLite store


def test_a_store_url_that_is_not_postgresql_is_refused_at_its_line(tmp_path: Path) -> None:
    path = _file(tmp_path, "server:\n  port: 9000\nstore:\n  url: sqlite:///engine.db\n")
    with pytest.raises(ValidationFailed) as refused:
        config.load(path, env={}, cwd=tmp_path)
    assert "caxton.yaml:4: store.url: must be a postgresql:// URL" in str(refused.value)


def test_scheduled_backups_are_refused_with_a_postgresql_store(tmp_path: Path) -> None:
    path = _file(tmp_path, "backups:\n  interval: 6h\n")
    with pytest.raises(ValidationFailed) as refused:
        config.load(path, env={"CAXTON_STORE_URL": "postgresql://caxton@db/caxton"}, cwd=tmp_path)
    assert "unset backups.interval" in str(refused.value) and "pg_dump" in str(refused.value)
    assert config.load(path, env={}, cwd=tmp_path).config.backups.interval == 6 * 3600  # fine on SQLite
