"""A real engine subprocess with ``memory.backend: postgres``: memory stored and searched over the API lives in
PostgreSQL, survives a kill -9 and restart, and /health/memory reports the backend; a second engine on the same
database (found through ``CAXTON_STORE_URL``) serves the same memory."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from tests.support.engine import EngineProcess


def _config(path: Path, memory: dict[str, str]) -> Path:
    path.write_text(yaml.safe_dump({"memory": memory}), encoding="utf-8")
    return path


def _search(url: str, query: str) -> list[str]:
    found = httpx.post(f"{url}/api/v1/memory/search", json={"query": query, "k": 2}, timeout=30)
    assert found.status_code == 200, found.text
    return [hit["name"] for hit in found.json()["results"]]


def test_memory_backend_postgres_serves_and_survives_a_restart(tmp_path: Path, pg_url: str) -> None:
    config = _config(tmp_path / "caxton.yaml", {"backend": "postgres", "url": pg_url})
    engine = EngineProcess(tmp_path / "data", config=config).start()
    try:
        api = f"{engine.url}/api/v1"
        for name, text in (("ada", "Ada drinks green tea with honey"), ("oslo", "Oslo is the capital of Norway")):
            made = httpx.post(f"{api}/memory/entities", json={"name": name, "entity_type": "fact",
                                                               "observations": [text]}, timeout=30)
            assert made.status_code == 201, made.text
        assert _search(engine.url, "what does Ada drink?")[0] == "ada"
        health = httpx.get(f"{api}/health/memory", timeout=30).json()
        assert health["status"] == "healthy" and health["backend"] == "postgres" and health["entities"] == 2
        assert health["pgvector"] and not (engine.data_dir / "memory.db").exists()
        engine.kill()
        engine.start()
        assert _search(engine.url, "capital of Norway")[0] == "oslo"
        # another engine on the same database, its URL from the environment (memory.url unset)
        other = EngineProcess(tmp_path / "other", config=_config(tmp_path / "other.yaml", {"backend": "postgres"}),
                              env={"CAXTON_STORE_URL": pg_url}).start()
        try:
            assert _search(other.url, "green tea")[0] == "ada"
            assert httpx.get(f"{other.url}/api/v1/health/memory", timeout=30).json()["entities"] == 2
        finally:
            other.terminate()
    finally:
        engine.terminate()


def test_an_unreachable_memory_database_leaves_the_engine_serving_with_memory_unhealthy(tmp_path: Path) -> None:
    from tests.support.paths import free_port

    url = f"postgresql://caxton:pw-not-shown@127.0.0.1:{free_port()}/memory"
    engine = EngineProcess(tmp_path / "data", config=_config(tmp_path / "caxton.yaml",
                                                             {"backend": "postgres", "url": url})).start()
    try:
        health = httpx.get(f"{engine.url}/api/v1/health/memory", timeout=30).json()
        assert health["status"] == "unhealthy" and "is unreachable" in health["message"]
        assert "pw-not-shown" not in str(health) + engine.log_text()
        assert httpx.get(f"{engine.url}/api/v1/health", timeout=30).json()["memory_backend"] == "postgres"
    finally:
        engine.terminate()
