"""Starlette's and FastAPI's routing helpers that are not public API, for the access policy.

:mod:`servers.policy` matches a request on the path the router matches on (``root_path``
removed: Starlette's private ``get_route_path``) and walks the app's routes, included routers
flattened, with FastAPI's ``iter_route_contexts`` (undocumented).
"""

from __future__ import annotations

from fastapi.routing import RouteContext, iter_route_contexts
from starlette._utils import get_route_path

__all__ = ["RouteContext", "get_route_path", "iter_route_contexts"]
