"""The route table and the handlers must agree, and routing must resolve like API Gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parley.api.routing import Route, RouteTable, load_module

EVENTS = Path(__file__).resolve().parents[2] / "events" / "api"


def test_every_handler_declares_exactly_its_table_routes(route_table: RouteTable) -> None:
    for function in route_table.functions():
        module = load_module(route_table.handler_path(function), f"routes_check_{function}")
        declared = {(d.method, d.rule, d.permission) for d in module.app.declared}
        expected = {(r.method, r.powertools_path, r.permission) for r in route_table.routes if r.function == function}
        assert declared == expected, f"functions/{function}/handler.py disagrees with functions/routes.py"


def test_every_function_directory_is_in_the_table(route_table: RouteTable) -> None:
    on_disk = {p.parent.name for p in route_table.root.glob("*/handler.py")}
    scheduled = {s.function for s in route_table.scheduled}
    consumers = {c.function for c in route_table.consumers}
    assert on_disk == {*route_table.functions(), route_table.authorizer, *scheduled, *consumers}


def test_every_function_has_a_sample_event_of_one_of_its_routes(route_table: RouteTable) -> None:
    for function in route_table.functions():
        event = json.loads((EVENTS / f"{function}.json").read_text())
        routes = [r for r in route_table.routes if r.function == function]
        assert (event["httpMethod"], event["resource"]) in {(r.method, r.path) for r in routes}
        assert (event["requestContext"]["authorizer"] is None) == (routes[0].permission is None)


def test_only_health_and_the_openapi_document_are_public(route_table: RouteTable) -> None:
    assert [r.path for r in route_table.routes if r.permission is None] == ["/v1/health", "/v1/openapi.json"]


def test_literal_segments_win_over_parameters(tmp_path: Path) -> None:
    table = RouteTable(
        routes=(
            Route("GET", "/v1/things/{thing_id}", "things_get", "things:GetThing"),
            Route("GET", "/v1/things/search", "things_search", "things:SearchThings"),
        ),
        authorizer="authorizer",
        root=tmp_path,
    )
    assert table.find("GET", "/v1/things/search") == (table.routes[1], {})
    assert table.find("GET", "/v1/things/thg_1") == (table.routes[0], {"thing_id": "thg_1"})
    assert table.find("POST", "/v1/things/thg_1") is None
    assert table.find("GET", "/v1/things/thg_1/more") is None
    assert table.routes[0].powertools_path == "/v1/things/<thing_id>"


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [("FETCH", "/v1/x", "x:GetX"), ("GET", "/x", "x:GetX"), ("GET", "/v1/x", "x.get"), ("GET", "/v1/x", "X:getx")],
)
def test_malformed_routes_are_refused(method: str, path: str, permission: str) -> None:
    with pytest.raises(ValueError):
        Route(method, path, "x", permission)
