"""Rate limits (RPM, TPM per project and key) and monthly budgets (project, key, end user)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from parley.api.routing import Route, RouteTable
from parley.aws import clients
from parley.domain.chat import Usage
from parley.domain.keys import Limits, ProjectLimits
from parley.domain.principal import Principal
from parley.runtime.local import LocalApi
from parley.services import keys, limits
from parley.services.metering import CallRecord, record_call
from parley.storage.limits import LimitsRepository
from tests.handlers.api import Api

T0 = datetime(2026, 12, 3, 10, 0, 5, tzinfo=UTC)
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    at = [T0]
    monkeypatch.setattr(limits, "now", lambda: at[0])
    return at


def limited(key: Limits | None = None, project: ProjectLimits | None = None) -> Principal:
    return Principal("org_a", "proj_a", "key_lim", ("*",), key_limits=key, project_limits=project)


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, limited())


def complete(api: Api, caller: Principal, **extra: Any) -> Any:
    return api.call("completions_create", {"model": "echo", "messages": MESSAGES, **extra}, principal=caller)


def test_the_sixth_request_within_a_minute_of_a_5_rpm_key_is_429_with_openais_headers(
    api: Api, clock: list[datetime]
) -> None:
    caller = limited(key=Limits(requests_per_minute=5))
    for i in range(5):
        reply = complete(api, caller)
        assert reply.status == 200, reply.body
        assert reply.headers["x-ratelimit-limit-requests"] == "5"
        assert reply.headers["x-ratelimit-remaining-requests"] == str(4 - i)
        assert reply.headers["x-ratelimit-reset-requests"] == "55s"
    refused = complete(api, caller)
    assert refused.status == 429
    assert refused.body["error"]["type"] == "rate_limit_error"
    assert refused.body["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["Retry-After"] == "55"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    clock[0] = T0 + timedelta(seconds=55)  # the next minute: a new window
    assert complete(api, caller).status == 200


def test_a_refused_request_counts_nothing_and_calls_no_model(api: Api, clock: list[datetime]) -> None:
    caller = limited(key=Limits(requests_per_minute=1))
    assert complete(api, caller).status == 200
    for _ in range(3):
        assert complete(api, caller).status == 429
    window = clients().dynamodb.get_item(
        TableName="parley-usage", Key={"pk": {"S": "proj_a#limits"}, "sk": {"S": "2026-12-03T10:00"}}
    )["Item"]
    assert window["k.key_lim.req"]["N"] == "1"
    audit = clients().dynamodb.query(
        TableName="parley-usage",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "proj_a#audit"}},
    )["Items"]
    assert len(audit) == 1  # one model call was made and metered


def test_tokens_per_minute_count_the_prompt_estimate_plus_max_tokens(api: Api, clock: list[datetime]) -> None:
    caller = limited(project=ProjectLimits(tokens_per_minute=100))
    first = complete(api, caller, max_tokens=40)
    assert first.status == 200
    used = 100 - int(first.headers["x-ratelimit-remaining-tokens"])
    assert used > 40  # max_tokens and the messages' estimate
    assert complete(api, caller, max_tokens=40).status == 200
    refused = complete(api, caller, max_tokens=40)
    assert refused.status == 429 and "tokens" in refused.body["error"]["message"]
    never = complete(api, limited(project=ProjectLimits(tokens_per_minute=10)), max_tokens=50)
    assert never.status == 429 and "can never be admitted" in never.body["error"]["message"]


def test_project_and_key_limits_both_apply_and_the_tighter_is_reported(api: Api, clock: list[datetime]) -> None:
    a = limited(key=Limits(requests_per_minute=10), project=ProjectLimits(requests_per_minute=3))
    b = Principal("org_a", "proj_a", "key_other", ("*",), project_limits=ProjectLimits(requests_per_minute=3))
    assert complete(api, a).headers["x-ratelimit-remaining-requests"] == "2"
    assert complete(api, b).headers["x-ratelimit-remaining-requests"] == "1"
    assert complete(api, a).headers["x-ratelimit-remaining-requests"] == "0"
    refused = complete(api, b)
    assert refused.status == 429 and "the project" in refused.body["error"]["message"]


def test_unlimited_keys_take_no_window_and_get_no_headers(api: Api, clock: list[datetime]) -> None:
    reply = complete(api, limited())
    assert reply.status == 200 and not any(h.startswith("x-ratelimit") for h in reply.headers)
    items = clients().dynamodb.scan(TableName="parley-usage")["Items"]
    assert not [i for i in items if i["pk"]["S"].endswith("#limits")]


def model_calling(route: Route) -> bool:
    return "metering" in route.resources


def request_for(api: Api, route: Route, caller: Principal) -> Any:
    """A valid request for a model-calling route (a conversation or chat is made first)."""
    if route.function == "completions_create":
        return api.call("completions_create", {"model": "echo", "messages": MESSAGES}, principal=caller)
    if route.function == "embeddings_create":
        return api.call("embeddings_create", {"model": "local", "input": "hi"}, principal=caller)
    if route.function == "chats_complete":
        provider = api.call(
            "providers_create",
            {"type": "echo", "name": uuid.uuid4().hex[:8], "default_model": "echo"},
            principal=caller,
        ).body
        chat = api.call("chats_create", {"name": "c", "ai_provider_id": provider["id"]}, principal=caller).body
        return api.call("chats_complete", {"messages": MESSAGES}, path={"chat_id": chat["id"]}, principal=caller)
    if route.function == "messages_create":
        conversation = api.call("conversations_create", {"user_id": "u1"}, principal=caller).body
        return api.call(
            "messages_create", {"content": "hi"}, path={"conversation_id": conversation["id"]}, principal=caller
        )
    if route.function == "responses_create":
        return api.call("responses_create", {"model": "echo", "input": "hi"}, principal=caller)
    if route.function == "indexes_create":
        return api.call("indexes_create", {"name": "kb", "embedding_model": "local"}, principal=caller)
    if route.function in ("index_documents_create", "index_query"):
        index = api.call("indexes_create", {"name": "kb", "embedding_model": "local"}, principal=limited()).body
        if route.function == "index_query":
            return api.call("index_query", {"query": "refunds"}, path={"index_id": index["id"]}, principal=caller)
        document = {"id": "refunds", "text": "Refunds within 30 days."}
        return api.call("index_documents_create", document, path={"index_id": index["id"]}, principal=caller)
    raise AssertionError(f"no request for the model-calling route {route.method} {route.path}: add one here")


def test_a_project_over_its_budget_gets_budget_exceeded_on_every_model_calling_route_and_no_other(
    api: Api, clock: list[datetime], route_table: RouteTable
) -> None:
    broke = limited(project=ProjectLimits(monthly_budget_usd=0))
    model_routes = [r for r in route_table.routes if model_calling(r)]
    assert {r.function for r in model_routes} == {
        "completions_create",
        "chats_complete",
        "messages_create",
        "embeddings_create",
        "responses_create",
        "indexes_create",
        "index_documents_create",
        "index_query",
    }
    for route in model_routes:
        reply = request_for(api, route, broke)
        assert reply.status == 429, (route.path, reply.body)
        assert reply.body["error"]["code"] == "budget_exceeded"
        assert int(reply.headers["Retry-After"]) == int((datetime(2027, 1, 1, tzinfo=UTC) - T0).total_seconds())
    for route in route_table.routes:
        if model_calling(route) or route.permission is None:
            continue
        path = dict.fromkeys(route.params, "x_unknown")
        reply = api.call(route.function, None, path=path or None, principal=broke)
        assert reply.status != 429, (route.method, route.path, reply.body)
    # nothing of a refused send was stored
    conversations = api.call("conversations_list", principal=broke).body["data"]
    assert all(c["message_count"] == 0 for c in conversations)


def spend(caller: Principal, user: str | None = None) -> None:
    """A priced call's cost (1M prompt tokens of gpt-4o-mini: $0.15), metered as a real call's is."""
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=0, total_tokens=1_000_000)
    call = CallRecord(
        route="test",
        request_id="r",
        model="gpt-4o-mini",
        status=200,
        outcome="succeeded",
        latency_ms=1,
        usage=usage,
        user=user,
    )
    cost = record_call(caller, call)
    assert cost is not None and cost > 0


def test_metering_adds_a_priced_calls_cost_to_the_months_spend_of_project_key_and_user(aws: None) -> None:
    caller = limited()
    spend(caller, user="u1")
    spent = LimitsRepository().spend(
        "proj_a", datetime.now(UTC).strftime("%Y-%m"), ["project", "key#key_lim", "user#u1"]
    )
    assert spent["project"] == spent["key#key_lim"] == spent["user#u1"] > 0


def test_key_and_user_budgets_stop_only_their_own_calls(api: Api) -> None:
    spender = limited(key=Limits(monthly_budget_usd=0.05))
    spend(spender)
    assert complete(api, spender).body["error"]["code"] == "budget_exceeded"
    assert complete(api, limited()).status == 200  # another key of the project
    project = ProjectLimits(user_monthly_budget_usd=0.05)
    heavy = limited(project=project)
    spend(heavy, user="heavy")
    limits.clear_cache()
    assert complete(api, heavy, user="heavy").body["error"]["code"] == "budget_exceeded"
    assert complete(api, heavy, user="light").status == 200
    conversation = api.call("conversations_create", {"user_id": "heavy"}, principal=heavy).body
    sent = api.call("messages_create", {"content": "x"}, path={"conversation_id": conversation["id"]}, principal=heavy)
    assert sent.body["error"]["code"] == "budget_exceeded"


def test_usage_shows_the_months_spend_against_the_budgets(api: Api) -> None:
    caller = limited(key=Limits(monthly_budget_usd=10), project=ProjectLimits(monthly_budget_usd=100))
    spend(caller)
    report = api.call("usage_get", principal=caller).body
    budgets = report["budgets"]
    assert budgets["month"] == datetime.now(UTC).strftime("%Y-%m")
    assert budgets["project"]["budget_usd"] == 100 and budgets["project"]["spent_usd"] > 0
    assert budgets["key"]["budget_usd"] == 10 and budgets["key"]["spent_usd"] == budgets["project"]["spent_usd"]


class LocalTransport(httpx.BaseTransport):
    """The openai SDK's HTTP, answered in process by the local server's API Gateway part."""

    def __init__(self, local: LocalApi) -> None:
        self.local = local

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.multi_items():
            headers.setdefault(name, []).append(value)
        target = request.url.raw_path.decode()
        answer = self.local.handle(request.method, target, headers, request.read())
        return httpx.Response(answer.status, headers=answer.headers, content=b"".join(answer.body))


def test_the_official_sdk_backs_off_by_itself_and_its_retry_succeeds_after_the_window(
    aws: None, route_table: RouteTable, clock: list[datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = keys.issue_key("org_a", "proj_a", ("*",), limits=Limits(requests_per_minute=5))
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the SDK's wait, on the limiter's clock instead of the wall's
        slept.append(seconds)
        clock[0] += timedelta(seconds=seconds)

    monkeypatch.setattr(openai._base_client.time, "sleep", sleep)  # type: ignore[attr-defined]
    client = openai.OpenAI(
        base_url="http://127.0.0.1:1/v1",
        api_key=issued.secret,
        max_retries=2,
        http_client=httpx.Client(transport=LocalTransport(LocalApi(route_table))),
    )
    for _ in range(5):
        client.chat.completions.create(model="echo", messages=MESSAGES)  # type: ignore[arg-type]
    assert slept == []
    sixth = client.chat.completions.with_raw_response.create(model="echo", messages=MESSAGES)  # type: ignore[arg-type]
    assert sixth.http_response.status_code == 200
    assert slept == [55.0]  # it waited the Retry-After the 429 gave, then succeeded in the new window
    assert sixth.headers["x-ratelimit-remaining-requests"] == "4"
    without_retries = client.with_options(max_retries=0)
    for _ in range(4):
        without_retries.chat.completions.create(model="echo", messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as refused:
        without_retries.chat.completions.create(model="echo", messages=MESSAGES)  # type: ignore[arg-type]
    assert refused.value.response.headers["retry-after"] == "60"
    assert json.loads(refused.value.response.text)["error"]["code"] == "rate_limit_exceeded"
