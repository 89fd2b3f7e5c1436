"""What every route module shares: the one ``PREFIX``, a router factory and the FastAPI dependencies.

- ``EngineDep``: the ``Engine`` facade of the app (``create_app`` keeps it in ``app.state.engine``);
  routes call its methods and never reach into its parts.
- ``CallerDep``: who calls (the ``Principal`` that ``caxton.engine.guard.Guard`` authenticated
  before any body was read; None when no tokens are configured), for the actor of a change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request

from caxton.engine.auth import Principal, principal_of
from caxton.engine.core import Engine
from caxton.engine.http.openapi import WireRoute, operation_id

PREFIX = "/api/v1"


def router(prefix: str = PREFIX) -> APIRouter:
    """An empty router under ``prefix`` whose routes answer as the wire says (``WireRoute``), with the
    engine's operation ids."""
    return APIRouter(prefix=prefix, route_class=WireRoute, generate_unique_id_function=operation_id)


def mount(app: FastAPI, router: APIRouter) -> None:
    """Add ``router``'s routes to ``app`` itself, in order.

    Not ``app.include_router``: FastAPI keeps an included router as one nested route, which every
    request's matching, the guard's route table (``caxton.engine.auth.Policy.compile``) and the
    messages-first order (``caxton.engine.http.app``) would have to look through.
    """
    app.router.routes.extend(router.routes)


def engine_of(request: Request) -> Engine:
    """The app's engine (called directly by the message route: no dependency solving on the hot path)."""
    engine: Engine = request.app.state.engine
    return engine


async def _engine(request: Request) -> Engine:
    return engine_of(request)


async def _caller(request: Request) -> Principal | None:
    return principal_of(request)


EngineDep = Annotated[Engine, Depends(_engine)]
CallerDep = Annotated[Principal | None, Depends(_caller)]
