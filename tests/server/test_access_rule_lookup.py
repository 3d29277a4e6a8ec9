"""A route's access rule is found on the route itself: a cache keyed by id() handed a new
app's route the rule of a collected app's route that had the same id (the PostgreSQL half
of the scope matrix saw GET /api/lessons/{id} answer with another route's rule)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from app_support import make_settings

from server.api.access import route_rule
from server.app import create_app


def _search(route: Any) -> Any:
    """The rule without any cache: the first `access_rule` in the dependency tree."""
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        rule = getattr(dependant.call, "access_rule", None)
        if rule is not None:
            return rule
        stack.extend(dependant.dependencies)
    return None


def test_apps_made_one_after_another_each_get_their_own_routes_rules(tmp_path: Path) -> None:
    for n in range(4):
        app = create_app(make_settings(tmp_path / str(n)))
        routes = [r for r in app.routes if hasattr(r, "dependant")]
        assert routes
        for route in routes:
            assert route_rule(route) is _search(route), route.path
        del app, routes
        gc.collect()  # the next app's objects may reuse these ids
