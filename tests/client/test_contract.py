"""No untyped JSON crosses the client/engine boundary: ``caxton.client`` (its resource modules, the
reconcile board among them, and the plan/apply use case) take and return ``caxton.spec.api`` models,
never ``dict[str, Any]``.

Checked on the resolved annotations of every public function, method and dataclass field, so an alias or
a nested ``list[dict[str, Any]]`` is caught too. ``EngineClient.request`` is the raw transport under
``EngineClient.call`` (it returns the decoded body, whatever it is) and is the one ``-> Any``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import typing
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import caxton.client
from caxton.spec import api

RAW_TRANSPORT = {"caxton.client.transport.EngineClient.request"}


def _modules() -> Iterator[ModuleType]:
    for info in pkgutil.iter_modules(caxton.client.__path__):
        yield importlib.import_module(f"caxton.client.{info.name}")


def _public(module: ModuleType) -> Iterator[tuple[str, Any]]:
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        where = f"{module.__name__}.{name}"
        if inspect.isfunction(value):
            yield where, value
        elif inspect.isclass(value):
            for attr, member in vars(value).items():
                if inspect.isfunction(member) and (not attr.startswith("_") or attr == "__init__"):
                    yield f"{where}.{attr}", member
            if dataclasses.is_dataclass(value):
                yield where, value


def _untyped(hint: Any) -> bool:
    if typing.get_origin(hint) is dict and typing.get_args(hint) == (str, Any):
        return True
    return any(_untyped(arg) for arg in typing.get_args(hint))


def _hints(obj: Any, module: ModuleType) -> dict[str, Any]:
    """Resolved annotations; names imported only under TYPE_CHECKING come from the other client modules."""
    names: dict[str, Any] = {}
    for other in _modules():
        names.update(vars(other))
    return typing.get_type_hints(obj, globalns={**names, **vars(module)})


def test_no_dict_str_any_in_the_clients_public_signatures() -> None:
    found: list[str] = []
    checked = 0
    for module in _modules():
        for where, obj in _public(module):
            checked += 1
            for name, hint in _hints(obj, module).items():
                if _untyped(hint):
                    found.append(f"{where} {name}: {hint}")
                if name == "return" and hint is Any and where not in RAW_TRANSPORT:
                    found.append(f"{where} returns Any")
    assert checked > 40, "the walk found too few functions: is it looking at the client?"
    assert not found, "untyped JSON crosses the client/engine boundary:\n" + "\n".join(found)


def test_the_check_catches_an_untyped_signature() -> None:
    def leaky(body: dict[str, Any]) -> list[dict[str, Any]]:
        return [body]

    assert _untyped(typing.get_type_hints(leaky)["body"]) and _untyped(typing.get_type_hints(leaky)["return"])
    assert not _untyped(typing.get_type_hints(api.wire)["model"])
