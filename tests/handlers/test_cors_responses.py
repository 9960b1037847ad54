"""CORS on the functions' own answers (issue 17 item 5): API Gateway answers the preflight (CDK's
OPTIONS methods) but passes a proxy integration's headers as they are, so a browser's actual
request is readable only when the function adds Access-Control-Allow-Origin: buffered, streamed
and error answers alike, from PARLEY_CORS_ALLOW_ORIGINS (CDK sets it from cors_allow_origins)."""

from __future__ import annotations

from typing import Any

import pytest

from parley.api.cors import EXPOSE_HEADERS
from parley.api.routing import RouteTable
from parley.domain.principal import Principal
from parley.settings import set_settings
from tests.handlers.api import Api

APP = "https://app.example"


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, Principal("org_c", "proj_c", "key_c", ("*",)))


def allow(monkeypatch: pytest.MonkeyPatch, origins: str) -> None:
    monkeypatch.setenv("PARLEY_CORS_ALLOW_ORIGINS", origins)
    set_settings(None)


def route(table: RouteTable, method: str, path: str) -> Any:
    return next(r for r in table.routes if (r.method, r.path) == (method, path))


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_an_allowed_origin_gets_its_headers_on_buffered_streamed_and_error_answers(
    api: Api, monkeypatch: pytest.MonkeyPatch, route_table: RouteTable
) -> None:
    allow(monkeypatch, f"{APP}, https://admin.example")
    origin = {"Origin": APP}
    chat = route(route_table, "POST", "/openai/v1/chat/completions")
    body = {"model": "echo", "messages": [{"role": "user", "content": "Hi"}]}
    for stream in (False, True):
        reply = api.call("completions_create", {**body, "stream": stream}, route=chat, headers=origin)
        assert reply.status == 200
        headers = lower(reply.headers)
        assert headers["access-control-allow-origin"] == APP and headers["vary"] == "Origin"
        assert headers["access-control-expose-headers"] == ",".join(EXPOSE_HEADERS)
    refused = api.call("completions_create", {"model": "echo"}, route=chat, headers=origin)  # no messages: 400
    assert refused.status == 400 and lower(refused.headers)["access-control-allow-origin"] == APP
    created = api.call(
        "openai_conversations", {}, route=route(route_table, "POST", "/openai/v1/conversations"), headers=origin
    )
    assert created.status == 200 and lower(created.headers)["access-control-allow-origin"] == APP


def test_no_header_for_another_origin_for_no_origin_or_without_configuration(
    api: Api, monkeypatch: pytest.MonkeyPatch, route_table: RouteTable
) -> None:
    models = route(route_table, "GET", "/openai/v1/models")
    allow(monkeypatch, APP)
    for headers in ({"Origin": "https://evil.example"}, None):
        reply = api.call("models_list", route=models, headers=headers)
        assert reply.status == 200 and "access-control-allow-origin" not in lower(reply.headers)
    allow(monkeypatch, "")  # the default: none (CDK sets nothing without cors_allow_origins)
    reply = api.call("models_list", route=models, headers={"Origin": APP})
    assert "access-control-allow-origin" not in lower(reply.headers)
    allow(monkeypatch, "*")
    reply = api.call("models_list", route=models, headers={"Origin": "https://any.example"})
    assert lower(reply.headers)["access-control-allow-origin"] == "*" and "vary" not in lower(reply.headers)
