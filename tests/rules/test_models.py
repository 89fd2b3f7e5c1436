"""``caxton.rules.models``: the section model and the field at a path, as validation and the engine use them."""

from __future__ import annotations

from caxton.rules import models
from caxton.spec.project import ProjectConfig, ServerSettings, TLSSettings


def test_model_at_walks_sections_through_optional_and_annotated_fields() -> None:
    assert models.model_at(ProjectConfig, ()) is ProjectConfig
    assert models.model_at(ProjectConfig, ("server",)) is ServerSettings
    assert models.model_at(ProjectConfig, ("server", "tls")) is TLSSettings


def test_model_at_is_none_for_a_leaf_or_an_unknown_key() -> None:
    assert models.model_at(ProjectConfig, ("server", "port")) is None
    assert models.model_at(ProjectConfig, ("nonsense",)) is None
    assert models.model_at(ProjectConfig, ("server", "nonsense", "deeper")) is None


def test_field_at_and_field_names() -> None:
    port = models.field_at(ProjectConfig, ("server", "port"))
    assert port is not None and port.default == 8080
    assert models.field_at(ProjectConfig, ("server", "nonsense")) is None
    names = models.field_names(ServerSettings)
    assert "port" in names and "tls" in names and names == sorted(set(names))
