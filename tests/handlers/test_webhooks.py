"""Webhooks end to end through the handlers: the resource routes, and the delivery pipeline
(events queue -> webhooks_fanout -> deliveries queue -> webhooks_deliver -> a receiver on
127.0.0.1), with a clock the tests move, so a day of retries takes milliseconds."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from parley.aws import clients
from parley.domain.events import MessageSent, MessageSentData
from parley.domain.ids import derived_id
from parley.domain.keys import parse_time
from parley.domain.principal import Principal
from parley.services import webhooks
from parley.settings import get_settings, set_settings
from parley.storage.queues import DeliveriesQueue
from parley.storage.webhooks import DeliveryRepository
from tests.handlers.api import Api, Reply
from tests.handlers.webhook_receiver import Clock, KeptQueue, Receiver, eventbridge_message, sqs_event

PROJECT = "proj_wh"
ADMIN = Principal("org_wh", PROJECT, "key_admin", ("*",))
STRANGER = Principal("org_wh", "proj_other", "key_stranger", ("*",))


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, ADMIN)


class Pipeline:
    """The two consumers, fed by hand: the deliveries queue is kept in memory and each message
    is handed to webhooks_deliver once the clock reaches the time SQS would have delivered it."""

    def __init__(self, load_handler: Any, lambda_context: Any) -> None:
        self.load, self.context = load_handler, lambda_context
        self.clock = Clock(datetime.now(UTC).replace(microsecond=0))
        self.queue = KeptQueue()
        self.delivered: list[dict[str, Any]] = []  # every message handed to webhooks_deliver
        self.deps = webhooks.Deps()

    def publish(self, detail: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.load("webhooks_fanout")(
            sqs_event([eventbridge_message(detail)], "parley-webhook-events"), self.context
        )
        return result

    def deliver(self, message: dict[str, Any]) -> dict[str, Any]:
        self.delivered.append(message)
        result: dict[str, Any] = self.load("webhooks_deliver")(sqs_event([json.dumps(message)]), self.context)
        return result

    def drain(self, limit: int = 100) -> None:
        """Hand every queued message over, the clock moving on by each message's delay."""
        for _ in range(limit):
            if not self.queue.sent:
                return
            message, delay = self.queue.sent.pop(0)
            self.clock.advance(timedelta(seconds=delay))
            assert self.deliver(message) == {"batchItemFailures": []}
        raise AssertionError("the queue did not drain")


@pytest.fixture
def pipeline(aws: None, load_handler: Any, lambda_context: Any) -> Iterator[Pipeline]:
    line = Pipeline(load_handler, lambda_context)
    line.deps = webhooks.Deps(queue=line.queue, clock=line.clock, jitter=lambda: 0.5)
    webhooks.set_deps(line.deps)
    yield line
    webhooks.set_deps(None)


def create(api: Api, url: str, types: list[str] | None = None, principal: Principal | None = None) -> dict[str, Any]:
    reply = api.call("webhooks_create", {"url": url, "event_types": types or ["chat.*"]}, principal=principal)
    assert reply.status == 201, reply.body
    assert reply.headers.get("Cache-Control") == "no-store"
    body: dict[str, Any] = reply.body
    return body


def message_sent(at: datetime, n: int = 1, project: str = PROJECT) -> dict[str, Any]:
    created = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event = MessageSent(
        id=derived_id("evt", int(at.timestamp() * 1000), f"test-event-{n}"),
        created_at=created,
        project_id=project,
        org_id="org_wh",
        conversation_id="conv_01JZ00000000000000000000AA",
        sequence=n,
        data=MessageSentData(
            conversation_id="conv_01JZ00000000000000000000AA",
            message_id="msg_01JZ00000000000000000000AA",
            seq=n,
            content=f"hello {n}",
            created_at=created,
        ),
    )
    return event.model_dump(mode="json")


def deliveries(api: Api, webhook_id: str, **query: str) -> list[dict[str, Any]]:
    reply = api.call("webhook_deliveries_list", path={"webhook_id": webhook_id}, query=query or None)
    assert reply.status == 200, reply.body
    data: list[dict[str, Any]] = reply.body["data"]
    return data


def delivery(api: Api, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    reply = api.call("webhook_deliveries_get", path={"webhook_id": webhook_id, "delivery_id": delivery_id})
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.body
    return body


def webhook(api: Api, webhook_id: str) -> dict[str, Any]:
    reply = api.call("webhooks_get", path={"webhook_id": webhook_id})
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.body
    return body


def verify(secret: str, received: Any) -> Any:
    return Verifier(secret).verify(received.body, received.headers)


# --- delivery, retries, the log -------------------------------------------------------------------


def test_a_receiver_failing_three_times_gets_the_event_four_times_and_the_log_shows_four_attempts(
    api: Api, pipeline: Pipeline
) -> None:
    with Receiver([500, 429, 503, 200]) as receiver:
        hook = create(api, receiver.url, ["chat.message_sent"])
        start = pipeline.clock()
        assert pipeline.publish(message_sent(start)) == {"batchItemFailures": []}
        pipeline.drain()
        # every message again (SQS redelivers at will): nothing more is sent
        for message in list(pipeline.delivered):
            assert pipeline.deliver(message) == {"batchItemFailures": []}
        pipeline.drain()

    assert len(receiver.requests) == 4
    first = receiver.requests[0]
    assert all(r.body == first.body for r in receiver.requests)
    assert {r.headers["webhook-id"] for r in receiver.requests} == {json.loads(first.body)["id"]}
    assert json.loads(first.body)["type"] == "chat.message_sent"
    assert verify(hook["secret"], first)["data"]["content"] == "hello 1"  # the first was signed at real time
    # the waits: 5 s, 5 min, 30 min (jitter 0.5 is the schedule itself)
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
    assert [b - a for a, b in itertools.pairwise(stamps)] == [5, 300, 1800]

    [listed] = deliveries(api, hook["id"])
    assert listed["status"] == "succeeded"
    assert listed["attempts"] == 4
    assert listed["last_status_code"] == 200
    assert listed["next_attempt_at"] is None
    detail = delivery(api, hook["id"], listed["id"])
    assert [a["status_code"] for a in detail["attempt_log"]] == [500, 429, 503, 200]
    assert [a["outcome"] for a in detail["attempt_log"]] == ["failed", "failed", "failed", "succeeded"]
    assert all(a["trigger"] == "scheduled" and a["latency_ms"] >= 0 for a in detail["attempt_log"])
    assert detail["attempt_log"][0]["error"] == "the endpoint answered 500"
    assert webhook(api, hook["id"])["failing_since"] is None  # the success ended the streak


def test_a_wait_longer_than_sqs_allows_goes_back_on_the_queue_with_the_rest_of_it(api: Api, pipeline: Pipeline) -> None:
    with Receiver([500, 500, 500, 200]) as receiver:
        create(api, receiver.url)
        pipeline.publish(message_sent(pipeline.clock()))
        delays = []
        while pipeline.queue.sent:
            message, delay = pipeline.queue.sent.pop(0)
            delays.append((message["attempt"], delay))
            pipeline.clock.advance(timedelta(seconds=delay))
            assert pipeline.deliver(message) == {"batchItemFailures": []}
    # attempt 3 is due 30 min after attempt 2: two full 900 s delays (no attempt in between)
    assert delays == [(0, 0), (1, 5), (2, 300), (3, 900), (3, 900)]
    assert len(receiver.requests) == 4


def test_the_retry_schedule_ends_failed_and_five_days_of_failure_disable_the_endpoint(
    api: Api, pipeline: Pipeline
) -> None:
    with Receiver([500]) as failing, Receiver([200]) as watcher:
        hook = create(api, failing.url, ["chat.*"])
        watch = create(api, watcher.url, ["webhook.endpoint_disabled"])
        pipeline.publish(message_sent(pipeline.clock(), 1))
        pipeline.drain()
        assert len(failing.requests) == 7  # the first attempt and 6 retries
        [done] = deliveries(api, hook["id"])
        assert done["status"] == "failed"
        assert done["attempts"] == 7
        assert done["next_attempt_at"] is None
        stamps = [int(r.headers["webhook-timestamp"]) for r in failing.requests]
        waits = [b - a for a, b in itertools.pairwise(stamps)]
        assert waits == [5, 300, 1800, 7200, 18000, 36000]
        assert deliveries(api, hook["id"], status="failed")[0]["id"] == done["id"]
        assert deliveries(api, hook["id"], status="succeeded") == []
        assert webhook(api, hook["id"])["enabled"] is True  # 17.6 h of failure is not 5 days

        pipeline.clock.advance(timedelta(days=5))
        pipeline.publish(message_sent(pipeline.clock(), 2))
        pipeline.drain()

    shown = webhook(api, hook["id"])
    assert shown["enabled"] is False
    assert "5 days" in shown["disabled_reason"]
    assert len(failing.requests) == 8  # nothing after the attempt that disabled it
    [announced] = watcher.requests
    event = json.loads(announced.body)
    assert event["type"] == "webhook.endpoint_disabled"
    assert event["data"]["webhook_id"] == hook["id"]
    assert event["data"]["failing_since"] is not None
    assert [d["event_type"] for d in deliveries(api, watch["id"])] == ["webhook.endpoint_disabled"]


def test_410_disables_the_endpoint_and_ends_the_delivery(api: Api, pipeline: Pipeline) -> None:
    with Receiver([410]) as gone, Receiver([200]) as watcher:
        hook = create(api, gone.url, ["*"])
        create(api, watcher.url, ["webhook.*"])
        pipeline.publish(message_sent(pipeline.clock(), 1))
        pipeline.drain()
        pipeline.publish(message_sent(pipeline.clock(), 2))  # a disabled endpoint gets no delivery
        pipeline.drain()
    assert len(gone.requests) == 1
    shown = webhook(api, hook["id"])
    assert shown["enabled"] is False
    assert "410" in shown["disabled_reason"]
    [ended] = deliveries(api, hook["id"])
    assert (ended["status"], ended["attempts"], ended["last_status_code"]) == ("failed", 1, 410)
    assert [json.loads(r.body)["type"] for r in watcher.requests] == ["webhook.endpoint_disabled"]
    # re-enabling clears the reason; the endpoint is sent events again
    reply = api.call("webhooks_update", {"enabled": True}, path={"webhook_id": hook["id"]})
    assert reply.status == 200, reply.body
    assert (reply.body["enabled"], reply.body["disabled_reason"]) == (True, None)


def test_an_announcement_that_failed_goes_out_with_the_next_event(
    api: Api, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver([410]) as gone, Receiver([200]) as watcher:
        create(api, gone.url, ["chat.*"])
        create(api, watcher.url, ["webhook.endpoint_disabled", "chat.message_sent"])
        pipeline.publish(message_sent(pipeline.clock(), 1))
        first = [m for m, _ in pipeline.queue.sent if m["webhook_id"] != watcher_id(api, watcher.url)]
        pipeline.queue.sent = [(m, d) for m, d in pipeline.queue.sent if m not in first]
        pipeline.drain()  # the watcher's own chat.message_sent
        original = DeliveryRepository.put_if_absent

        def broken(self: DeliveryRepository, record: Any) -> Any:
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "PutItem")

        monkeypatch.setattr(DeliveryRepository, "put_if_absent", broken)
        [message] = first
        failed = pipeline.deliver(message)  # the 410 disables; the announcement cannot be stored
        assert len(failed["batchItemFailures"]) == 1
        monkeypatch.setattr(DeliveryRepository, "put_if_absent", original)
        pipeline.publish(message_sent(pipeline.clock(), 2))
        pipeline.drain()
        pipeline.publish(message_sent(pipeline.clock(), 3))
        pipeline.drain()
    kinds = [json.loads(r.body)["type"] for r in watcher.requests]
    assert kinds.count("webhook.endpoint_disabled") == 1
    assert kinds.count("chat.message_sent") == 3
    assert len(gone.requests) == 1


def watcher_id(api: Api, url: str) -> str:
    return next(w["id"] for w in api.call("webhooks_list").body["data"] if w["url"] == url)


def test_a_redelivered_events_message_makes_no_second_delivery_and_sends_once(
    aws: None, api: Api, load_handler: Any, lambda_context: Any
) -> None:
    """With the real (moto) deliveries queue: the same event twice, both messages delivered."""
    with Receiver([200]) as receiver:
        hook = create(api, receiver.url)
        body = eventbridge_message(message_sent(datetime.now(UTC)))
        fan_out, deliver = load_handler("webhooks_fanout"), load_handler("webhooks_deliver")
        assert fan_out(sqs_event([body]), lambda_context) == {"batchItemFailures": []}
        assert fan_out(sqs_event([body]), lambda_context) == {"batchItemFailures": []}
        assert len(deliveries(api, hook["id"])) == 1
        queue = DeliveriesQueue()
        messages = queue.client.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10)["Messages"]
        assert len(messages) == 2  # the second fan-out queued the delivery again (in case the first had not)
        for message in messages:
            assert deliver(sqs_event([message["Body"]]), lambda_context) == {"batchItemFailures": []}
    assert len(receiver.requests) == 1
    [done] = deliveries(api, hook["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 1)


def test_an_attempt_in_progress_elsewhere_is_not_made_twice(api: Api, pipeline: Pipeline) -> None:
    with Receiver([200]) as receiver:
        hook = create(api, receiver.url)
        pipeline.publish(message_sent(pipeline.clock()))
        [(message, _)] = pipeline.queue.sent
        scope = DeliveryRepository.scope(PROJECT, hook["id"])
        record = DeliveryRepository().get(scope, message["delivery_id"])
        assert record is not None
        assert webhooks._claim(record, "s0", webhooks._deps(None)) is not None  # another worker holds it
        pipeline.queue.sent.clear()
        assert pipeline.deliver(message) == {"batchItemFailures": []}
        [(again, delay)] = pipeline.queue.sent  # put back until the claim runs out
        assert again == message
        assert 0 < delay <= webhooks.CLAIM.total_seconds()
    assert receiver.requests == []


def test_storage_failures_are_reported_for_redelivery_and_endpoint_failures_are_not(
    api: Api, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver([500]) as receiver:
        create(api, receiver.url)
        pipeline.publish(message_sent(pipeline.clock()))
        [(message, _)] = pipeline.queue.sent
        pipeline.queue.sent.clear()
        # an endpoint failure is a scheduled retry, not a failed message
        assert pipeline.deliver(message) == {"batchItemFailures": []}
        [(retry, _)] = pipeline.queue.sent

        def throttled(*args: Any, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "GetItem")

        monkeypatch.setattr(DeliveryRepository, "get", throttled)
        event = sqs_event([json.dumps(retry), "not json", json.dumps({"v": 1})])
        failed = pipeline.load("webhooks_deliver")(event, pipeline.context)
        assert failed == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}
        broken = sqs_event([json.dumps({"detail-type": "x"})], "parley-webhook-events")
        assert pipeline.load("webhooks_fanout")(broken, pipeline.context) == {
            "batchItemFailures": [{"itemIdentifier": broken["Records"][0]["messageId"]}]
        }
    assert len(receiver.requests) == 1


def test_timeouts_and_connection_errors_are_failed_attempts_retried_on_schedule(api: Api, pipeline: Pipeline) -> None:
    seen: list[httpx.Request] = []
    failures = [httpx.ReadTimeout("slow"), httpx.ConnectError("refused")]

    def endpoint(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if failures:
            raise failures.pop(0)
        return httpx.Response(204)

    webhooks.set_deps(dataclasses.replace(pipeline.deps, transport=httpx.MockTransport(endpoint)))
    hook = create(api, "http://127.0.0.1:9/mocked")
    pipeline.publish(message_sent(pipeline.clock()))
    pipeline.drain()
    assert len(seen) == 3
    assert seen[0].extensions["timeout"] == {"connect": 10.0, "read": 10.0, "write": 10.0, "pool": 10.0}
    assert seen[0].headers["content-type"] == "application/json"
    detail = delivery(api, hook["id"], deliveries(api, hook["id"])[0]["id"])
    assert [(a["status_code"], a["error"]) for a in detail["attempt_log"]] == [
        (None, "no answer within 10 s"),
        (None, "the request failed (ConnectError)"),
        (204, None),
    ]
    assert detail["status"] == "succeeded"


def test_outside_local_mode_the_guard_refuses_at_connect_time(api: Api, pipeline: Pipeline) -> None:
    with Receiver([200]) as receiver:
        hook = create(api, receiver.url)  # allowed when it was stored (local mode)
        set_settings(get_settings().with_(stage="prod"))
        reply = api.call("webhooks_test", path={"webhook_id": hook["id"]})
    assert reply.status == 200, reply.body
    assert reply.body["status"] == "failed"
    assert reply.body["last_error"] == "the URL must use https"
    assert receiver.requests == []


# --- signatures -----------------------------------------------------------------------------------


def test_signatures_verify_with_standardwebhooks_through_a_rotation_and_its_grace(api: Api, pipeline: Pipeline) -> None:
    with Receiver([200]) as receiver:
        hook = create(api, receiver.url)
        first = hook["secret"]
        assert first.startswith("whsec_")
        pipeline.publish(message_sent(pipeline.clock(), 1))
        pipeline.drain()
        verify(first, receiver.requests[-1])

        rotated = api.call("webhooks_rotate", path={"webhook_id": hook["id"]})
        assert rotated.status == 200, rotated.body
        assert rotated.headers.get("Cache-Control") == "no-store"
        second = rotated.body["secret"]
        assert second != first
        expires = parse_time(rotated.body["previous_secret_expires_at"]) - parse_time(rotated.body["secret_rotated_at"])
        assert expires == timedelta(hours=24)
        pipeline.publish(message_sent(pipeline.clock(), 2))
        pipeline.drain()
        during = receiver.requests[-1]
        assert len(during.headers["webhook-signature"].split(" ")) == 2  # both, space-separated
        verify(first, during)  # receivers that have not switched yet
        verify(second, during)  # and those that have

        ended = api.call("webhooks_rotate", path={"webhook_id": hook["id"]}, query={"grace_seconds": "0"})
        assert ended.status == 200, ended.body
        third = ended.body["secret"]
        assert ended.body["previous_secret_expires_at"] is None
        test = api.call("webhooks_test", path={"webhook_id": hook["id"]})
        assert test.status == 200, test.body
        after = receiver.requests[-1]
        assert json.loads(after.body)["type"] == "webhook.test"
        verify(third, after)
        for old in (first, second):
            with pytest.raises(WebhookVerificationError):
                verify(old, after)
    assert (test.body["status"], test.body["attempts"]) == ("succeeded", 1)
    assert test.body["attempt_log"][0]["trigger"] == "manual"


def test_the_grace_ends_when_it_says(api: Api, pipeline: Pipeline) -> None:
    with Receiver([200]) as receiver:
        hook = create(api, receiver.url)
        api.call("webhooks_rotate", path={"webhook_id": hook["id"]}, query={"grace_seconds": "60"})
        pipeline.clock.advance(timedelta(seconds=61))
        pipeline.publish(message_sent(pipeline.clock(), 1))
        pipeline.drain()
    assert len(receiver.requests[-1].headers["webhook-signature"].split(" ")) == 1


# --- manual attempts ------------------------------------------------------------------------------


def test_a_failed_delivery_can_be_retried_by_hand_and_a_test_event_goes_the_same_way(
    api: Api, pipeline: Pipeline
) -> None:
    with Receiver([500, 500, 500, 500, 500, 500, 500, 200]) as receiver:
        hook = create(api, receiver.url)
        pipeline.publish(message_sent(pipeline.clock()))
        pipeline.drain()
        [failed] = deliveries(api, hook["id"])
        assert failed["status"] == "failed"
        path = {"webhook_id": hook["id"], "delivery_id": failed["id"]}
        retried = api.call("webhook_deliveries_retry", path=path, headers={"Idempotency-Key": "r1"})
        assert retried.status == 200, retried.body
        assert (retried.body["status"], retried.body["attempts"]) == ("succeeded", 8)
        assert retried.body["attempt_log"][-1]["trigger"] == "manual"
        again = api.call("webhook_deliveries_retry", path=path, headers={"Idempotency-Key": "r1"})
        assert again.body == retried.body  # the same key answers the same attempt, not another one
    assert len(receiver.requests) == 8
    assert pipeline.queue.sent == []  # a manual attempt queues nothing


def test_a_test_event_to_an_endpoint_that_is_down_is_logged_as_failed(api: Api, pipeline: Pipeline) -> None:
    hook = create(api, "http://127.0.0.1:9/nobody-listens")
    reply = api.call("webhooks_test", path={"webhook_id": hook["id"]})
    assert reply.status == 200, reply.body
    assert (reply.body["status"], reply.body["event_type"], reply.body["last_status_code"]) == (
        "failed",
        "webhook.test",
        None,
    )
    assert reply.body["last_error"].startswith("the request failed")
    assert deliveries(api, hook["id"])[0]["id"] == reply.body["id"]


def test_a_disabled_endpoint_takes_no_manual_attempt(api: Api, pipeline: Pipeline) -> None:
    hook = create(api, "http://127.0.0.1:9/x")
    api.call("webhooks_update", {"enabled": False}, path={"webhook_id": hook["id"]})
    reply = api.call("webhooks_test", path={"webhook_id": hook["id"]})
    assert reply.status == 409
    assert reply.body["error"]["code"] == "webhook_disabled"


# --- the resource ---------------------------------------------------------------------------------


def test_the_secret_is_never_in_a_read_a_list_the_table_or_the_logs(
    api: Api, pipeline: Pipeline, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with Receiver([200]) as receiver:
        hook = create(api, receiver.url)
        path = {"webhook_id": hook["id"]}
        rotated = api.call("webhooks_rotate", path=path).body["secret"]
        replies: list[Reply] = [
            api.call("webhooks_get", path=path),
            api.call("webhooks_list"),
            api.call("webhooks_update", {"description": "ops"}, path=path),
            api.call("webhooks_test", path=path),
        ]
        pipeline.publish(message_sent(pipeline.clock()))
        pipeline.drain()
        listed = deliveries(api, hook["id"])
        replies.append(api.call("webhook_deliveries_get", path={**path, "delivery_id": listed[0]["id"]}))
    shown = json.dumps([r.body for r in replies]) + json.dumps(listed)
    db = clients().dynamodb
    stored = json.dumps([db.scan(TableName=t)["Items"] for t in db.list_tables()["TableNames"]])
    out = capsys.readouterr()
    logs = caplog.text + out.out + out.err
    for secret in (hook["secret"], rotated):
        for where, text in (("a response", shown), ("DynamoDB", stored), ("the logs", logs)):
            assert secret not in text, f"a webhook secret is in {where}"
            assert secret.removeprefix("whsec_") not in text, f"a webhook key is in {where}"
    assert "secret" not in replies[0].body and "secret_name" not in replies[0].body


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/hooks", "https"),
        ("https://10.0.0.1/hooks", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://[fd00::1]/hooks", "private"),
        ("ftp://example.com/hooks", "http(s)"),
        ("https://user:pw@example.com/hooks", "credentials"),
        ("not a url", "URL"),
    ],
)
def test_a_url_the_egress_guard_refuses_is_400(api: Api, url: str, why: str) -> None:
    reply = api.call("webhooks_create", {"url": url, "event_types": ["*"]})
    assert reply.status == 400, reply.body
    error = reply.body["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "invalid_url", "url")
    assert why in error["message"]
    hook = create(api, "http://127.0.0.1:9/x")
    patched = api.call("webhooks_update", {"url": url}, path={"webhook_id": hook["id"]})
    assert patched.status == 400, patched.body
    assert patched.body["error"]["param"] == "url"


def test_loopback_is_allowed_in_local_mode_only(aws: None) -> None:
    from parley.domain.errors import InvalidRequest

    assert webhooks._check_url("http://127.0.0.1:8080/h", webhooks.Deps()) == "http://127.0.0.1:8080/h"
    set_settings(get_settings().with_(stage="prod"))
    with pytest.raises(InvalidRequest, match="https"):
        webhooks._check_url("http://127.0.0.1:8080/h", webhooks.Deps())
    with pytest.raises(InvalidRequest, match="private, loopback"):
        webhooks._check_url("https://127.0.0.1/h", webhooks.Deps())
    public = webhooks.Deps(resolver=lambda host, port: ["93.184.215.14"])
    assert webhooks._check_url("https://hooks.example.com/in", public) == "https://hooks.example.com/in"
    rebinding = webhooks.Deps(resolver=lambda host, port: ["93.184.215.14", "10.1.2.3"])
    with pytest.raises(InvalidRequest):
        webhooks._check_url("https://hooks.example.com/in", rebinding)


@pytest.mark.parametrize(
    ("types", "param"),
    [
        (["chat.nope"], "event_types[0]"),
        (["chat.message_sent", "nope.*"], "event_types[1]"),
        (["chat"], "event_types[0]"),
        (["Chat.Message_Sent"], "event_types[0]"),
        (["**"], "event_types[0]"),
    ],
)
def test_an_unknown_event_type_is_400(api: Api, types: list[str], param: str) -> None:
    reply = api.call("webhooks_create", {"url": "http://127.0.0.1:9/x", "event_types": types})
    assert reply.status == 400, reply.body
    error = reply.body["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "unknown_event_type", param)


def test_event_types_take_exact_types_families_and_everything(api: Api) -> None:
    hook = create(api, "http://127.0.0.1:9/x", ["chat.message_sent", "webhook.*", "*", "chat.message_sent"])
    assert hook["event_types"] == ["chat.message_sent", "webhook.*", "*"]
    assert hook["enabled"] is True
    assert hook["object"] == "webhook"
    assert hook["id"].startswith("whk_")


def test_create_list_update_delete(api: Api) -> None:
    one = create(api, "http://127.0.0.1:9/one")
    two = create(api, "http://127.0.0.1:9/two")
    first = api.call("webhooks_list", query={"limit": "1"})
    assert [w["id"] for w in first.body["data"]] == [two["id"]]  # newest first
    rest = api.call("webhooks_list", query={"limit": "1", "cursor": first.body["next_cursor"]})
    assert [w["id"] for w in rest.body["data"]] == [one["id"]]
    path = {"webhook_id": one["id"]}
    patched = api.call("webhooks_update", {"description": "CRM", "event_types": ["chat.handoff_requested"]}, path=path)
    assert patched.status == 200, patched.body
    assert (patched.body["description"], patched.body["event_types"], patched.body["version"]) == (
        "CRM",
        ["chat.handoff_requested"],
        2,
    )
    assert api.call("webhooks_update", {"url": None}, path=path).status == 400
    deleted = api.call("webhooks_delete", path=path)
    assert deleted.body == {"id": one["id"], "object": "webhook", "deleted": True}
    assert api.call("webhooks_get", path=path).status == 404
    assert api.call("webhooks_delete", path=path).status == 404
    secrets = clients().secretsmanager.list_secrets(IncludePlannedDeletion=True)["SecretList"]
    assert [s["Name"].rsplit("/", 1)[1] for s in secrets if "DeletedDate" in s] == [one["id"]]


def test_a_project_has_at_most_max_webhooks(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "MAX_WEBHOOKS", 2)
    create(api, "http://127.0.0.1:9/a")
    create(api, "http://127.0.0.1:9/b")
    reply = api.call("webhooks_create", {"url": "http://127.0.0.1:9/c", "event_types": ["*"]})
    assert reply.status == 400
    assert reply.body["error"]["code"] == "webhook_limit_reached"


def test_an_idempotency_key_never_makes_a_second_webhook(api: Api) -> None:
    body = {"url": "http://127.0.0.1:9/x", "event_types": ["*"]}
    first = api.call("webhooks_create", body, headers={"Idempotency-Key": "create-1"})
    assert first.status == 201
    again = api.call("webhooks_create", body, headers={"Idempotency-Key": "create-1"})
    assert again.status == 409
    assert again.body["error"]["code"] == "webhook_already_created"
    assert first.body["id"] in again.body["error"]["message"]
    other = api.call("webhooks_create", {**body, "description": "x"}, headers={"Idempotency-Key": "create-1"})
    assert other.body["error"]["code"] == "idempotency_key_reused"
    assert len(api.call("webhooks_list").body["data"]) == 1


def test_another_projects_webhook_ids_are_404(api: Api, pipeline: Pipeline) -> None:
    hook = create(api, "http://127.0.0.1:9/x")
    made = api.call("webhooks_test", path={"webhook_id": hook["id"]}).body
    path = {"webhook_id": hook["id"]}
    both = {**path, "delivery_id": made["id"]}
    for function, ids, body in (
        ("webhooks_get", path, None),
        ("webhooks_update", path, {"description": "mine now"}),
        ("webhooks_delete", path, None),
        ("webhooks_rotate", path, None),
        ("webhooks_test", path, None),
        ("webhook_deliveries_list", path, None),
        ("webhook_deliveries_get", both, None),
        ("webhook_deliveries_retry", both, None),
    ):
        reply = api.call(function, body, path=ids, principal=STRANGER)
        assert reply.status == 404, (function, reply.body)
        assert reply.body["error"]["type"] == "not_found_error"
    assert api.call("webhooks_list", principal=STRANGER).body["data"] == []
    assert webhook(api, hook["id"])["description"] is None
    # an event of another project reaches none of this project's endpoints
    pipeline.publish(message_sent(pipeline.clock(), project="proj_other"))
    assert pipeline.queue.sent == []
