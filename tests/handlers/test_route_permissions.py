"""Permissions for every route, generated from the route table (functions/routes.py).

For each route with a permission:
  - a key holding exactly that permission gets a 2xx for a well-formed request (a streaming route
    is driven with `stream: false`, and streamed too, to the end without an error event);
  - a key holding every other route's permission, but not this one, gets 403 permission_error and
    nothing changes: every item of every DynamoDB table, every S3 object, every secret and every
    queue's counts are the same after the call as before (each POST sends an Idempotency-Key, so
    a refusal that stored one shows too);
  - a key of another project (of another org for a route whose recipe says `scope="org"`),
    holding `*`, gets 404 not_found_error for the first project's ids in the route's path, streamed
    or not, and nothing changes;
  - `<resource>:*` and `*` grant the route; another resource's permissions (its `*`, and this
    route's action under its name) do not.
Permissions a route checks itself for some requests (INNER) are refused before any side effect too.

Each route needs a recipe in RECIPES, keyed by (method, path): its body and query (values, or
functions of the World), what has to happen first (`prepare`), and its scope. The ids in a path
come from MAKERS, by parameter name, created on first use by an admin (`*`) of the caller's
project. A route of the table with no recipe fails `test_every_route_has_a_recipe` (and every
test of that route), so a new route cannot escape these checks. Adding a route is a line in
RECIPES (`scope="org"` where the ids are an organization's, as the /v1/projects routes), and a new
path parameter one line in MAKERS.

Public routes (no permission, e.g. /v1/health) need no recipe. One moto serves the module and
is reset before each test (a fresh one per test would cost ~1 s each, mostly new boto3 clients).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from moto import mock_aws

from parley.api.routing import Route, load_route_table
from parley.aws import Clients, clients, set_clients
from parley.domain.principal import Principal
from parley.runtime.local import LOCAL_ENV
from parley.settings import set_settings
from parley.storage.provision import provision
from tests.handlers.api import Api, Reply

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType

TABLE = load_route_table(Path(__file__).resolve().parents[2] / "functions" / "routes.py")
GUARDED = tuple(r for r in TABLE.routes if r.permission is not None)
PERMISSIONS = frozenset(r.permission for r in GUARDED if r.permission is not None)
RESOURCES = frozenset(p.split(":", 1)[0] for p in PERMISSIONS)
ORG = "org_perm"


class World:
    """One project's resources, created on first use by an admin (`*`) of that project."""

    def __init__(self, api: Api, project_id: str, patch: pytest.MonkeyPatch) -> None:
        self.api = api
        self.patch = patch  # the test's monkeypatch, for recipes that need one
        self.admin = Principal(ORG, project_id, f"key_admin_{project_id}", ("*",))
        self.ids: dict[str, str] = {}

    def fresh(self) -> World:
        """Another project, with none of this one's resources."""
        return World(self.api, f"proj_{uuid.uuid4().hex[:12]}", self.patch)

    def id(self, param: str) -> str:
        if param not in self.ids:
            maker = MAKERS.get(param)
            assert maker is not None, f"add a maker for the path parameter {{{param}}} to MAKERS"
            self.ids[param] = maker(self)
        return self.ids[param]

    def path(self, route: Route) -> dict[str, str]:
        return {param: self.id(param) for param in route.params}

    def call(
        self,
        route: Route,
        principal: Principal,
        body: object = None,
        query: Mapping[str, str] | None = None,
        *,
        path: dict[str, str] | None = None,
        idempotency_key: bool = True,
    ) -> Reply:
        """Every POST sends an Idempotency-Key (unless told not to): a refusal must not store one."""
        headers = {"Idempotency-Key": uuid.uuid4().hex} if route.method == "POST" and idempotency_key else None
        return self.api.call(
            route.function,
            body,
            path=path if path is not None else self.path(route),
            query=dict(query) if query else None,
            principal=principal,
            headers=headers,
            route=route,
        )

    def admin_call(self, method: str, path: str, body: object = None) -> Reply:
        """A call of a route of the table as this project's admin; it must succeed."""
        route = route_of(method, path)
        reply = self.call(route, self.admin, body)
        assert 200 <= reply.status < 300, f"{method} {path} as admin: {reply.status} {reply.body}"
        return reply

    def create(self, method: str, path: str, body: object) -> str:
        return str(self.admin_call(method, path, body).body["id"])


# How to create each kind of resource a path names, by path parameter.
MAKERS: dict[str, Callable[[World], str]] = {
    "provider_id": lambda w: w.create(
        "POST", "/v1/providers", {"type": "echo", "name": f"echo-{uuid.uuid4().hex}", "default_model": "echo"}
    ),
    "chat_id": lambda w: w.create("POST", "/v1/chats", {"ai_provider_id": w.id("provider_id"), "name": "Support"}),
    # the provider's default model, <provider name>/echo, its slash sent as %2F (as OpenAI's SDKs do)
    "model_id": lambda w: str(w.admin_call("GET", "/v1/providers/{provider_id}").body["name"]) + "%2Fecho",
    "conversation_id": lambda w: w.create("POST", "/v1/conversations", {"title": "Billing", "user_id": "u1"}),
    "response_id": lambda w: w.create("POST", "/v1/responses", {"model": "echo", "input": "Hello!"}),
    "document_id": lambda w: w.create("POST", "/v1/documents", {"name": "policy.md", "content": "Refunds: 30 days."}),
    "index_id": lambda w: w.create("POST", "/v1/indexes", {"name": "help-center", "embedding_model": "local"}),
    "key_id": lambda w: w.create("POST", "/v1/api-keys", {"name": "ci", "permissions": ["conversations:*"]}),
    "project_id": lambda w: w.create("POST", "/v1/projects", {"name": "Mobile app"}),
    # a local receiver that is not listening: attempts fail fast (connection refused), and are logged
    "webhook_id": lambda w: w.create(
        "POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "event_types": ["chat.*", "webhook.test"]}
    ),
    "delivery_id": lambda w: str(w.admin_call("POST", "/v1/webhooks/{webhook_id}/test").body["id"]),
    "agent_id": lambda w: w.create(
        "POST",
        "/v1/agents",
        {
            "name": f"agent_{uuid.uuid4().hex[:12]}",
            "system_prompt": "You are Acme's support agent.",
            "tools": [{"type": "http", "name": "lookup", "url": "http://127.0.0.1:9/tool"}],
        },
    ),
    "item_id": lambda w: str(
        w.admin_call(
            "POST",
            "/openai/v1/conversations/{conversation_id}/items",
            {"items": [{"type": "message", "role": "user", "content": "Hello!"}]},
        ).body["data"][0]["id"]
    ),
}


@dataclass(frozen=True)
class Recipe:
    """A well-formed request of one route: a body and a query (each a value or a function of the
    World), what to do first, and whose resources the route's ids are: a project's, or (routes
    such as /v1/projects/{project_id}) an org's, so that another org's key gets 404."""

    body: object = None
    query: Mapping[str, str] | Callable[[World], Mapping[str, str]] | None = None
    prepare: Callable[[World], object] | None = None
    scope: Literal["project", "org"] = "project"
    # 2xx unless said otherwise
    status: range = field(default=range(200, 300))

    def request(self, world: World) -> tuple[object, Mapping[str, str] | None]:
        if self.prepare is not None:
            self.prepare(world)
        body = self.body(world) if callable(self.body) else self.body
        query = self.query(world) if callable(self.query) else self.query
        return body, query


COMPLETION = {"model": "echo", "messages": [{"role": "user", "content": "Hello!"}], "stream": False}
CHAT_COMPLETION = {"messages": [{"role": "user", "content": "Hello!"}], "stream": False}
CONVERSATION = "/v1/conversations/{conversation_id}"
WEBHOOK = "/v1/webhooks/{webhook_id}"
AGENT = "/v1/agents/{agent_id}"
INDEX = "/v1/indexes/{index_id}"


def with_an_index_document(w: World) -> None:
    """The stored document ({document_id}) added to the index (so the index routes find it by that id)."""
    w.admin_call("POST", f"{INDEX}/documents", {"document_id": w.id("document_id")})


def archived(w: World) -> None:
    w.admin_call("POST", f"{CONVERSATION}/archive")


def with_a_message(w: World) -> None:
    w.admin_call("POST", f"{CONVERSATION}/messages", {"content": "hello"})


def an_anchor(w: World) -> dict[str, str]:
    """A thread's body: anchored to the conversation's newest message (sent first)."""
    with_a_message(w)
    newest = w.admin_call("GET", f"{CONVERSATION}/messages").body["data"][0]
    return {"parent_message_id": str(newest["id"]), "title": "About this"}


def with_a_thread(w: World) -> None:
    w.admin_call("POST", f"{CONVERSATION}/threads", an_anchor(w))


def handed_off(w: World) -> None:
    """The conversation handed off to a human (once: a recipe may be prepared twice in a test)."""
    if w.admin_call("GET", CONVERSATION).body["status"] != "handed_off":
        w.admin_call("POST", f"{CONVERSATION}/handoff", {"to": "human", "reason": "Refund"})


OPERATOR_REPLY = {"role": "assistant", "content": "On it", "author": {"type": "human", "id": "op_7", "name": "Dana"}}


RECIPES: dict[tuple[str, str], Recipe] = {
    ("POST", "/v1/chat/completions"): Recipe(COMPLETION),
    ("POST", "/v1/chats/completions"): Recipe(COMPLETION),
    ("POST", "/v1/embeddings"): Recipe({"model": "local", "input": ["Hello!", "Refunds within 30 days."]}),
    ("POST", "/v1/providers"): Recipe(lambda w: {"type": "echo", "name": f"echo-{uuid.uuid4().hex}"}),
    ("GET", "/v1/providers"): Recipe(query={"limit": "5"}),
    ("GET", "/v1/providers/{provider_id}"): Recipe(),
    ("PATCH", "/v1/providers/{provider_id}"): Recipe({"name": "renamed", "default_model": "echo"}),
    ("DELETE", "/v1/providers/{provider_id}"): Recipe(),
    ("GET", "/v1/usage"): Recipe(query={"group_by": "key"}),
    ("GET", "/v1/audit-events"): Recipe(query={"limit": "5"}),
    ("POST", "/v1/conversations"): Recipe({"title": "New", "user_id": "u1"}),
    ("GET", "/v1/conversations"): Recipe(query={"user_id": "u1"}),
    ("GET", CONVERSATION): Recipe(query={"include": "sessions,messages"}, prepare=with_a_message),
    ("PATCH", CONVERSATION): Recipe({"title": "Renamed", "metadata": {"priority": "high"}}),
    ("DELETE", CONVERSATION): Recipe(prepare=with_a_message),
    ("POST", f"{CONVERSATION}/archive"): Recipe(),
    ("POST", f"{CONVERSATION}/unarchive"): Recipe(prepare=archived),
    ("POST", f"{CONVERSATION}/messages"): Recipe({"content": "Hello!", "stream": False}),
    ("GET", f"{CONVERSATION}/messages"): Recipe(query={"order": "asc"}, prepare=with_a_message),
    ("POST", f"{CONVERSATION}/sessions"): Recipe({"model": "echo"}),
    ("GET", f"{CONVERSATION}/sessions"): Recipe(),
    ("GET", f"{CONVERSATION}/context"): Recipe(prepare=with_a_message),
    ("POST", f"{CONVERSATION}/context"): Recipe({"content": "The customer is on the Pro plan."}),
    ("POST", f"{CONVERSATION}/threads"): Recipe(an_anchor),
    ("GET", f"{CONVERSATION}/threads"): Recipe(query={"limit": "5"}, prepare=with_a_thread),
    ("POST", f"{CONVERSATION}/handoff"): Recipe({"to": "human", "reason": "Refund", "metadata": {"queue": "billing"}}),
    ("POST", f"{CONVERSATION}/handoff/resolve"): Recipe({"resolution": "Refunded"}, prepare=handed_off),
    ("GET", f"{CONVERSATION}/handoffs"): Recipe(query={"limit": "5"}, prepare=handed_off),
    ("GET", "/v1/handoffs"): Recipe(query={"status": "pending"}, prepare=handed_off),
    ("POST", "/v1/chats"): Recipe(lambda w: {"ai_provider_id": w.id("provider_id"), "name": "Support"}),
    ("GET", "/v1/chats"): Recipe(),
    ("GET", "/v1/chats/{chat_id}"): Recipe(),
    ("POST", "/v1/responses"): Recipe({"model": "echo", "input": "Hello!"}),
    ("GET", "/v1/responses/{response_id}"): Recipe(),
    ("DELETE", "/v1/responses/{response_id}"): Recipe(),
    ("GET", "/v1/responses/{response_id}/input_items"): Recipe(query={"order": "asc"}),
    # Parley's responses are never background ones: a stored response is not cancellable (400)
    ("POST", "/v1/responses/{response_id}/cancel"): Recipe(status=range(400, 401)),
    ("GET", "/v1/models"): Recipe(),
    ("GET", "/v1/models/{model_id}"): Recipe(),
    ("GET", "/v1/chats/{chat_id}/models"): Recipe(),
    ("GET", "/v1/chats/{chat_id}/models/{model_id}"): Recipe(),
    ("PATCH", "/v1/chats/{chat_id}"): Recipe({"name": "Billing", "model": "echo"}),
    ("DELETE", "/v1/chats/{chat_id}"): Recipe(),
    ("POST", "/v1/chats/{chat_id}/completions"): Recipe(CHAT_COMPLETION),
    ("POST", "/v1/chats/{chat_id}/chat/completions"): Recipe(CHAT_COMPLETION),
    ("POST", "/v1/documents"): Recipe({"name": "faq.md", "media_type": "text/markdown", "content": "# FAQ"}),
    ("GET", "/v1/documents"): Recipe(),
    ("GET", "/v1/documents/{document_id}"): Recipe(query={"include": "content"}),
    ("DELETE", "/v1/documents/{document_id}"): Recipe(),
    ("POST", "/v1/projects"): Recipe({"name": "Web app"}, scope="org"),
    ("GET", "/v1/projects"): Recipe(query={"limit": "5"}, scope="org"),
    ("GET", "/v1/projects/{project_id}"): Recipe(scope="org"),
    ("PATCH", "/v1/projects/{project_id}"): Recipe(
        {"name": "Renamed", "limits": {"requests_per_minute": 100}}, scope="org"
    ),
    ("POST", "/v1/api-keys"): Recipe({"name": "deployer", "permissions": ["api_keys:CreateApiKey"]}),
    ("GET", "/v1/api-keys"): Recipe(query={"limit": "5"}),
    ("GET", "/v1/api-keys/{key_id}"): Recipe(),
    ("PATCH", "/v1/api-keys/{key_id}"): Recipe({"name": "renamed"}),
    ("DELETE", "/v1/api-keys/{key_id}"): Recipe(),
    ("POST", "/v1/api-keys/{key_id}/rotate"): Recipe(),
    ("POST", "/v1/webhooks"): Recipe({"url": "http://127.0.0.1:9/hook", "event_types": ["chat.message_sent"]}),
    ("GET", "/v1/webhooks"): Recipe(query={"limit": "5"}),
    ("GET", WEBHOOK): Recipe(),
    ("PATCH", WEBHOOK): Recipe({"description": "Replies", "event_types": ["chat.response_completed"]}),
    ("DELETE", WEBHOOK): Recipe(),
    ("POST", f"{WEBHOOK}/rotate"): Recipe(query={"grace_seconds": "60"}),
    ("POST", f"{WEBHOOK}/test"): Recipe(),
    ("GET", f"{WEBHOOK}/deliveries"): Recipe(query={"status": "failed"}),
    ("GET", f"{WEBHOOK}/deliveries/{{delivery_id}}"): Recipe(),
    ("POST", f"{WEBHOOK}/deliveries/{{delivery_id}}/retry"): Recipe(),
    ("POST", "/v1/agents"): Recipe(
        lambda w: {
            "name": f"agent_{uuid.uuid4().hex[:12]}",
            "tools": [{"type": "client", "name": "lookup_order", "parameters": {"type": "object"}}],
        }
    ),
    ("GET", "/v1/agents"): Recipe(query={"limit": "5"}),
    ("GET", AGENT): Recipe(query={"version": "1"}),
    ("PATCH", AGENT): Recipe({"system_prompt": "You are Acme's billing agent.", "max_tool_steps": 3}),
    ("DELETE", AGENT): Recipe(),
    ("GET", f"{AGENT}/versions"): Recipe(query={"limit": "5"}),
    ("POST", f"{AGENT}/rotate-secret"): Recipe(),
    ("POST", "/v1/indexes"): Recipe({"name": "faq", "embedding_model": "local", "chunking": {"max_tokens": 200}}),
    ("GET", "/v1/indexes"): Recipe(query={"limit": "5"}),
    ("GET", INDEX): Recipe(),
    ("PATCH", INDEX): Recipe({"description": "The help center", "metadata": {"team": "support"}}),
    ("DELETE", INDEX): Recipe(prepare=with_an_index_document),
    ("POST", f"{INDEX}/documents"): Recipe({"id": "returns", "text": "Returns ship free.", "metadata": {"lang": "en"}}),
    ("GET", f"{INDEX}/documents"): Recipe(query={"limit": "5"}, prepare=with_an_index_document),
    ("GET", f"{INDEX}/documents/{{document_id}}"): Recipe(prepare=with_an_index_document),
    ("DELETE", f"{INDEX}/documents/{{document_id}}"): Recipe(prepare=with_an_index_document),
    ("POST", f"{INDEX}/query"): Recipe({"query": "refund window", "top_k": 3}, prepare=with_an_index_document),
    ("GET", "/v1/search/messages"): Recipe(query={"q": "hello", "limit": "5"}),
    # OpenAI's Conversations API under /openai/v1
    ("POST", "/openai/v1/conversations"): Recipe(
        {"metadata": {"topic": "billing"}, "items": [{"type": "message", "role": "user", "content": "Hi"}]}
    ),
    ("GET", "/openai/v1/conversations/{conversation_id}"): Recipe(),
    ("POST", "/openai/v1/conversations/{conversation_id}"): Recipe({"metadata": {"topic": "refunds"}}),
    ("DELETE", "/openai/v1/conversations/{conversation_id}"): Recipe(),
    ("GET", "/openai/v1/conversations/{conversation_id}/items"): Recipe(query={"order": "asc", "limit": "5"}),
    ("POST", "/openai/v1/conversations/{conversation_id}/items"): Recipe(
        {"items": [{"type": "message", "role": "user", "content": "Hello again"}]}
    ),
    ("GET", "/openai/v1/conversations/{conversation_id}/items/{item_id}"): Recipe(),
    ("DELETE", "/openai/v1/conversations/{conversation_id}/items/{item_id}"): Recipe(),
}
# the routes OpenAI's surface shares with Parley's, under /openai/v1: the same requests
RECIPES.update(
    {
        (method, "/openai" + path): RECIPES[(method, path)]
        for method, path in (
            ("POST", "/v1/chat/completions"),
            ("GET", "/v1/models"),
            ("GET", "/v1/models/{model_id}"),
            ("POST", "/v1/responses"),
            ("GET", "/v1/responses/{response_id}"),
            ("DELETE", "/v1/responses/{response_id}"),
            ("GET", "/v1/responses/{response_id}/input_items"),
            ("POST", "/v1/responses/{response_id}/cancel"),
            ("POST", "/v1/embeddings"),
        )
    }
)


def route_of(method: str, path: str) -> Route:
    found = next((r for r in TABLE.routes if (r.method, r.path) == (method, path)), None)
    assert found is not None, f"{method} {path} is not a route of functions/routes.py"
    return found


def recipe_for(route: Route) -> Recipe:
    recipe = RECIPES.get((route.method, route.path))
    assert recipe is not None, (
        f"add a recipe for {route.method} {route.path} to RECIPES in tests/handlers/test_route_permissions.py"
    )
    return recipe


def ids(routes: tuple[Route, ...]) -> list[str]:
    return [f"{r.method} {r.path}" for r in routes]


# ---- the state of everything a route could change -------------------------------------------------


QUEUE_COUNTS: tuple[QueueAttributeNameType, ...] = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def snapshot() -> dict[str, Any]:
    """Every item of every DynamoDB table, every S3 object, every secret (values and versions) and
    every queue's message counts, in a comparable form."""
    aws = clients()
    state: dict[str, Any] = {}
    tables = [n for page in aws.dynamodb.get_paginator("list_tables").paginate() for n in page["TableNames"]]
    for table in sorted(tables):
        items = [
            json.dumps(item, sort_keys=True, default=str)
            for page in aws.dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
            for item in page["Items"]
        ]
        state[f"dynamodb:{table}"] = sorted(items)
    for bucket in sorted(b["Name"] for b in aws.s3.list_buckets().get("Buckets", [])):
        objects = {}
        for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                objects[obj["Key"]] = aws.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        state[f"s3:{bucket}"] = objects
    secrets = {}
    for listed in aws.secretsmanager.get_paginator("list_secrets").paginate(IncludePlannedDeletion=True):
        for secret in listed["SecretList"]:
            name = secret["Name"]
            versions = aws.secretsmanager.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
            entry: dict[str, Any] = {
                "deleted": str(secret.get("DeletedDate")),
                "versions": sorted((v["VersionId"], tuple(sorted(v.get("VersionStages", [])))) for v in versions),
            }
            if "DeletedDate" not in secret:
                value = aws.secretsmanager.get_secret_value(SecretId=name)
                entry["value"] = value.get("SecretString", value.get("SecretBinary"))
            secrets[name] = entry
    state["secretsmanager"] = secrets
    for url in sorted(aws.sqs.list_queues().get("QueueUrls", [])):
        attributes = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        state[f"sqs:{url}"] = {name: attributes.get(name) for name in QUEUE_COUNTS}
    return state


def assert_unchanged(before: dict[str, Any], after: dict[str, Any], what: str) -> None:
    changes = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if isinstance(old, list) and isinstance(new, list):  # a table's items: what went, what came
            gone, came = [i for i in old if i not in new], [i for i in new if i not in old]
            changes.append(f"{name}: -{[i[:300] for i in gone]} +{[i[:300] for i in came]}")
        else:
            changes.append(f"{name}: {str(old)[:300]} -> {str(new)[:300]}")
    assert not changes, f"{what} changed:\n" + "\n".join(changes)


# ---- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _emulation() -> Iterator[tuple[Any, Clients]]:
    """One moto for the module, reset before each test (50 ms), and one set of clients: a new
    boto3 client costs ~150 ms (it parses its service model), a fresh moto with fresh clients ~1 s."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in LOCAL_ENV.items():
            env.setenv(name, value)
        set_settings(None)
        mock = mock_aws()
        mock.start()
        try:
            yield mock, Clients()
        finally:
            mock.stop()
            set_settings(None)
            set_clients(None)


@pytest.fixture
def api(_emulation: tuple[Any, Clients], load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    """An empty emulation (every table, the bucket, the queue; no item), as in `aws`."""
    from parley.services.providers import call_cache

    mock, aws = _emulation
    mock.reset()
    set_clients(aws)
    provision(aws)
    call_cache().clear()
    return Api(load_handler, sample_event, lambda_context, Principal(ORG, "proj_none", "key_none", ()))


@pytest.fixture
def world(api: Api, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(api, f"proj_{uuid.uuid4().hex[:12]}", monkeypatch)


def holding(world: World, *permissions: str) -> Principal:
    return Principal(ORG, world.admin.project_id, f"key_{uuid.uuid4().hex[:8]}", tuple(permissions))


def granted(world: World, route: Route, principal: Principal) -> Reply:
    recipe = recipe_for(route)
    body, query = recipe.request(world)
    reply = world.call(route, principal, body, query)
    assert reply.status in recipe.status, f"{route.method} {route.path} with {principal.permissions}: {reply.body}"
    return reply


def refused(world: World, route: Route, principal: Principal) -> Reply:
    recipe = recipe_for(route)
    body, query = recipe.request(world)
    path = world.path(route)  # the resources exist before the snapshot
    before = snapshot()
    reply = world.call(route, principal, body, query, path=path)
    assert_unchanged(before, snapshot(), f"a refused {route.method} {route.path}")
    assert reply.status == 403, f"{route.method} {route.path} with {principal.permissions}: {reply.body}"
    assert reply.body["error"]["type"] == "permission_error"
    assert route.permission is not None
    assert route.permission in reply.body["error"]["message"]
    return reply


# ---- the tests ------------------------------------------------------------------------------------


def test_every_route_has_a_recipe() -> None:
    missing = [f"{r.method} {r.path}" for r in GUARDED if (r.method, r.path) not in RECIPES]
    assert not missing, f"add a recipe for {', '.join(missing)} to RECIPES in tests/handlers/test_route_permissions.py"
    stale = sorted(f"{m} {p}" for m, p in RECIPES.keys() - {(r.method, r.path) for r in GUARDED})
    assert not stale, f"RECIPES has recipes for routes the table does not have (or that are public): {stale}"
    params = sorted({p for r in GUARDED for p in r.params} - MAKERS.keys())
    assert not params, f"add a maker for the path parameters {params} to MAKERS"


@pytest.mark.parametrize("route", GUARDED, ids=ids(GUARDED))
def test_exactly_the_routes_permission_is_enough(world: World, route: Route) -> None:
    assert route.permission is not None
    granted(world, route, holding(world, route.permission))
    if not route.streaming:
        return
    again = world.fresh()  # the first call may have deleted what the route's path names
    body, query = recipe_for(route).request(again)
    if isinstance(body, dict):  # streamed too, to the end, without an error event
        streamed = again.call(route, holding(again, route.permission), {**body, "stream": True}, query)
        assert streamed.status == 200, streamed.body
        assert isinstance(streamed.body, str), streamed.body
        # no error event (Parley's `event: error`, OpenAI's `error` data or `response.failed`); a
        # Responses object's own `"error": null` is not one
        assert "event: error" not in streamed.body and "response.failed" not in streamed.body, streamed.body
        assert not re.search(r'"error":\s*\{', streamed.body), streamed.body


@pytest.mark.parametrize("route", GUARDED, ids=ids(GUARDED))
def test_every_other_permission_is_refused_with_403_and_no_side_effect(world: World, route: Route) -> None:
    refused(world, route, holding(world, *sorted(PERMISSIONS - {route.permission})))


WITH_IDS = tuple(r for r in GUARDED if r.params)


@pytest.mark.parametrize("route", WITH_IDS, ids=ids(WITH_IDS))
def test_another_projects_ids_are_404_and_change_nothing(world: World, route: Route) -> None:
    recipe = recipe_for(route)
    body, query = recipe.request(world)
    path = world.path(route)
    other_org = ORG if recipe.scope == "project" else f"{ORG}_other"
    stranger = Principal(other_org, f"proj_{uuid.uuid4().hex[:12]}", "key_stranger", ("*",))
    before = snapshot()
    # No Idempotency-Key: with one, the 404 is kept in the stranger's own idempotency scope, as
    # every non-transient response is (parley.api.idempotency), and that is no side effect on the owner.
    reply = world.call(route, stranger, body, query, path=path, idempotency_key=False)
    assert reply.status == 404, f"{route.method} {route.path} for another project's {path}: {reply.body}"
    assert reply.body["error"]["type"] == "not_found_error"
    if route.streaming and isinstance(body, dict):  # streamed, the 404 still comes before the first byte
        streamed = world.call(route, stranger, {**body, "stream": True}, query, path=path, idempotency_key=False)
        assert streamed.status == 404, f"{route.method} {route.path} streamed: {streamed.status} {streamed.body}"
        assert isinstance(streamed.body, dict), f"a stream, not an error response: {streamed.body}"
        assert streamed.body["error"]["type"] == "not_found_error"
    assert_unchanged(before, snapshot(), f"a 404 {route.method} {route.path}")
    # and the owner still can
    granted(world, route, world.admin)


@pytest.mark.parametrize("grant", ["resource:*", "*"])
@pytest.mark.parametrize("route", GUARDED, ids=ids(GUARDED))
def test_wildcards_grant(world: World, route: Route, grant: str) -> None:
    assert route.permission is not None
    resource = route.permission.split(":", 1)[0]
    granted(world, route, holding(world, f"{resource}:*" if grant == "resource:*" else "*"))


@pytest.mark.parametrize("route", GUARDED, ids=ids(GUARDED))
def test_another_resources_permissions_do_not_grant(world: World, route: Route) -> None:
    assert route.permission is not None
    resource, action = route.permission.split(":", 1)
    others = sorted(RESOURCES - {resource})
    refused(world, route, holding(world, *(f"{o}:*" for o in others), *(f"{o}:{action}" for o in others)))


# ---- permissions a route checks itself, for part of what it does ---------------------------------


def a_dead_invocations_reply(w: World) -> None:
    """A reply a dead invocation left pending, old enough to be written back by the next read."""
    from parley.providers.echo import EchoProvider
    from parley.storage import conversations

    def die(self: Any, request: Any) -> Any:
        raise SystemExit("the invocation was killed")  # nothing in Parley catches this

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EchoProvider, "complete", die)
        with pytest.raises(SystemExit):
            w.call(route_of("POST", f"{CONVERSATION}/messages"), w.admin, {"content": "hi"})
    w.patch.setattr(conversations, "STALE_PENDING", timedelta(0))


@dataclass(frozen=True)
class Inner:
    """A permission a route needs, besides its own, for some requests (`recipe`)."""

    method: str
    path: str
    permission: str
    recipe: Recipe


INNER = (
    Inner(
        "GET",
        f"{CONVERSATION}/messages",
        "conversations:ReadHiddenContext",
        Recipe(query={"include_hidden": "true"}, prepare=a_dead_invocations_reply),
    ),
    # an operator's reply during a human handoff (the route's own permission is SendMessage)
    Inner(
        "POST",
        f"{CONVERSATION}/messages",
        "conversations:PostOperatorMessage",
        Recipe(OPERATOR_REPLY, prepare=handed_off),
    ),
)


@pytest.mark.parametrize("inner", INNER, ids=[f"{i.method} {i.path} {i.permission}" for i in INNER])
def test_a_permission_checked_inside_a_route_refuses_before_any_side_effect(world: World, inner: Inner) -> None:
    route = route_of(inner.method, inner.path)
    assert route.permission is not None
    body, query = inner.recipe.request(world)
    path = world.path(route)
    before = snapshot()
    reply = world.call(route, holding(world, route.permission), body, query, path=path)
    assert_unchanged(before, snapshot(), f"a refused {route.method} {route.path} ({inner.permission})")
    assert reply.status == 403, reply.body
    assert reply.body["error"]["type"] == "permission_error"
    assert inner.permission in reply.body["error"]["message"]
    allowed = world.call(route, holding(world, route.permission, inner.permission), body, query, path=path)
    assert allowed.status in inner.recipe.status, allowed.body
