"""What a request logs: JSON lines that all carry the request id, route and project, one closing
"request" line with the outcome, and never the message content or the API key (unless the stage's
PARLEY_LOG_CONTENT debug flag is on, which logs the body, still never the key)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from parley.api.observability import logger
from parley.domain.principal import Principal
from parley.settings import get_settings, set_settings
from tests.handlers.api import Api

OWNER = Principal("org_log", "proj_log", "key_log", ("*",))
CONTENT = "the launch code is tangerine-4471"
API_KEY = "pk_live_abcdefghijklmnopqrstuvwxyz012345"


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def send(api: Api, stream: bool) -> None:
    cid = api.call("conversations_create", {"title": "t"}).body["id"]
    reply = api.call(
        "messages_create",
        {"content": CONTENT, "stream": stream},
        path={"conversation_id": cid},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert 200 <= reply.status < 300, reply.body


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_a_send_logs_its_request_id_route_project_and_outcome_but_no_content_and_no_key(api: Api, stream: bool) -> None:
    captured: list[dict[str, Any]] = []
    with _capture(captured):
        send(api, stream)
    assert captured
    raw = json.dumps(captured)
    assert CONTENT not in raw and "tangerine" not in raw
    assert API_KEY not in raw
    for line in captured:
        assert line["request_id"] and line["route"] and line["project_id"] == OWNER.project_id, line
    closing = [line for line in captured if line["message"] == "request"]
    assert [c["route"] for c in closing] == [
        "POST /v1/conversations",
        "POST /v1/conversations/{conversation_id}/messages",
    ]
    assert [c["outcome"] for c in closing] == ["succeeded", "succeeded"]
    assert all(200 <= c["status"] < 300 for c in closing)


def test_with_log_content_on_the_body_is_logged_but_never_the_key(api: Api) -> None:
    settings = get_settings()
    set_settings(settings.with_(log_content=True))
    captured: list[dict[str, Any]] = []
    try:
        with _capture(captured):
            send(api, stream=False)
    finally:
        set_settings(settings)
    raw = json.dumps(captured)
    assert CONTENT in raw
    assert API_KEY not in raw


def test_a_refused_request_closes_with_outcome_rejected(api: Api) -> None:
    captured: list[dict[str, Any]] = []
    with _capture(captured):
        reply = api.call("conversations_create", {"title": 5})
    assert reply.status == 400
    (closing,) = [line for line in captured if line["message"] == "request"]
    assert (closing["outcome"], closing["status"]) == ("rejected", 400)


class _capture:
    def __init__(self, into: list[dict[str, Any]]) -> None:
        self.into = into
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)

    def __enter__(self) -> None:
        self.handler.setFormatter(logger().registered_formatter)
        parley = logging.getLogger(logger().name)
        self.level = parley.level
        parley.setLevel(logging.INFO)  # the tests' environment says WARNING (parley.runtime.local)
        parley.addHandler(self.handler)

    def __exit__(self, *exc: object) -> None:
        parley = logging.getLogger(logger().name)
        parley.removeHandler(self.handler)
        parley.setLevel(self.level)
        self.into.extend(json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip())
