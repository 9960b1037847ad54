"""The local server's API Gateway part, in process: permissions, the authorizer cache, routing."""

from __future__ import annotations

import json
from typing import Any

from parley.api.routing import RouteTable
from parley.runtime.local import LocalApi
from parley.services.keys import issue_key


def call(api: LocalApi, key: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    raw = json.dumps(body or {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}).encode()
    response = api.handle("POST", "/v1/chat/completions", {"Authorization": [f"Bearer {key}"]}, raw)
    return response.status, json.loads(b"".join(response.body))


def test_a_key_without_the_routes_permission_gets_403(aws: None, route_table: RouteTable) -> None:
    limited = issue_key("org", "proj", ("conversations:*",))
    status, body = call(LocalApi(route_table), limited.secret)
    assert status == 403
    assert body["error"]["type"] == "permission_error"
    allowed = issue_key("org", "proj", ("completions:CreateChatCompletion",))
    assert call(LocalApi(route_table), allowed.secret)[0] == 200


def test_authorizer_results_are_cached_per_key_for_the_tables_ttl(aws: None, route_table: RouteTable) -> None:
    now = [1000.0]
    api = LocalApi(route_table, clock=lambda: now[0])
    key = issue_key("org", "proj")
    calls: list[str] = []
    original = api.invoke

    def counting(function: str, event: dict[str, Any], *args: Any) -> Any:
        calls.append(function)
        return original(function, event, *args)

    api.invoke = counting  # type: ignore[method-assign]
    for _ in range(3):
        assert call(api, key.secret)[0] == 200
    assert calls.count("authorizer") == 1
    now[0] += route_table.authorizer_cache_seconds + 1
    assert call(api, key.secret)[0] == 200
    assert calls.count("authorizer") == 2


def test_query_strings_and_trailing_slashes_route(aws: None, route_table: RouteTable) -> None:
    response = LocalApi(route_table).handle("GET", "/v1/health/?verbose=1", {}, b"")
    assert response.status == 200


def test_a_revoked_or_rotated_key_is_refused_once_the_authorizer_cache_expires(
    aws: None, route_table: RouteTable
) -> None:
    from parley.domain.principal import Principal
    from parley.services import keys

    now = [1000.0]
    api = LocalApi(route_table, clock=lambda: now[0])
    admin = Principal("org", "proj", "key_admin", ("*",))
    revoked = issue_key("org", "proj")
    rotated = keys.create_key(admin, keys.ApiKeyCreate(name="r"))
    assert call(api, revoked.secret)[0] == 200 and call(api, rotated.secret)[0] == 200
    keys.delete_key(admin, revoked.record.key_id)
    keys.rotate_key(admin, rotated.id)
    # within the documented bound the cached authorization still stands (as on API Gateway) ...
    now[0] += route_table.authorizer_cache_seconds - 1
    assert call(api, revoked.secret)[0] == 200
    # ... and once it has passed, both old secrets are refused
    now[0] += 2
    assert call(api, revoked.secret)[0] == 401
    assert call(api, rotated.secret)[0] == 401
