"""Where a key sits in a pydantic model: the section model at a path, the field at a path, a model's keys.

Pure (pydantic only). Used by validation to explain a rejected key of an agent file or of
``caxton.yaml`` (``caxton.validation.schema``) and by the engine to explain a rejected setting
(``caxton.engine.config``), so both name the same section and the same known keys.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

#: A path into a document: mapping keys and list indices.
Path_ = tuple[str | int, ...]


def field_names(model: type[BaseModel]) -> list[str]:
    names = list(model.model_fields)
    for info in model.model_fields.values():
        choices = getattr(info.validation_alias, "choices", None) or []
        names.extend(c for c in choices if isinstance(c, str))
    return sorted(set(names))


def unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated so the walker sees the model or container type."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def step(annotation: Any, part: str | int) -> tuple[Any, FieldInfo | None]:
    annotation = unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(part, str):
        info = annotation.model_fields.get(part)
        if info is None:
            info = next((f for f in annotation.model_fields.values()
                         if part in (getattr(f.validation_alias, "choices", None) or [])), None)
        return (info.annotation, info) if info is not None else (None, None)
    args = get_args(annotation)
    if get_origin(annotation) in (list, tuple, set) and isinstance(part, int) and args:
        return args[0], None
    if get_origin(annotation) is dict and len(args) == 2:
        return args[1], None
    return None, None


def model_at(model: type[BaseModel], loc: Path_) -> type[BaseModel] | None:
    """The model of the section at ``loc`` (``None`` when ``loc`` is not a section)."""
    annotation: Any = model
    for part in loc:
        annotation, _ = step(annotation, part)
        if annotation is None:
            return None
    annotation = unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def field_at(model: type[BaseModel], loc: Path_) -> FieldInfo | None:
    annotation: Any = model
    info: FieldInfo | None = None
    for part in loc:
        annotation, info = step(annotation, part)
        if annotation is None:
            return None
    return info
