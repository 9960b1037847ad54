"""The `parley` CLI against httpx.MockTransport: the exact requests, the output, the errors."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent

from parley.cli import main
from parley.cli.client import ParleyClient, parse_event

KEY = "prl_test_Zq9Xv7DoNotPrintMe_4411"
ENV = {"PARLEY_API_KEY": KEY}
Handler = Callable[[httpx.Request], httpx.Response]

CHAT = {
    "id": "cht_1",
    "object": "chat",
    "project_id": "proj_test",
    "ai_provider_id": "aip_1",
    "name": "Support",
    "system_message": "You are helpful.",
    "model": "echo",
    "created_at": "2025-01-01T00:00:00Z",
    "updated_at": "2025-01-01T00:00:00Z",
}


def chat(number: int) -> dict[str, Any]:
    return {**CHAT, "id": f"cht_{number}", "name": f"chat {number}"}


class Api:
    """A MockTransport that records every request and answers with the handler's response."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.bodies: list[Any] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        content = request.read()
        self.bodies.append(json.loads(content) if content else None)
        return self.handler(request)

    @property
    def request(self) -> httpx.Request:
        assert len(self.requests) == 1, [str(r.url) for r in self.requests]
        return self.requests[0]


def run(
    api: Api, argv: list[str], capsys: pytest.CaptureFixture[str], env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    code = main(argv, transport=api.transport, env=ENV if env is None else env)
    out, err = capsys.readouterr()
    assert KEY not in out and KEY not in err, "the API key was printed"
    return code, out, err


def ok(body: Any, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, json=body)


def api_error(
    status: int, code: str, message: str, param: str | None = None, request_id: str | None = "req_123"
) -> Handler:
    body = {
        "error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": param,
            "request_id": request_id,
        }
    }
    return ok(body, status)


def assert_auth(request: httpx.Request) -> None:
    assert request.headers["authorization"] == f"Bearer {KEY}"


# --- create -------------------------------------------------------------------------------------


def test_create_posts_the_given_fields(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(ok(CHAT, 201))
    argv = ["chats", "create", "--ai-provider-id", "aip_1", "--name", "Support"]
    code, out, err = run(api, [*argv, "--system-message", "You are helpful.", "--model", "echo"], capsys)

    assert code == 0, err
    request = api.request
    assert request.method == "POST"
    assert request.url == "http://127.0.0.1:8000/v1/chats"
    assert_auth(request)
    assert request.headers["content-type"] == "application/json"
    assert api.bodies[0] == {
        "ai_provider_id": "aip_1",
        "name": "Support",
        "system_message": "You are helpful.",
        "model": "echo",
    }
    assert out.splitlines()[0] == "Created chat cht_1"
    assert "ai_provider_id: aip_1" in out


def test_create_omits_unset_fields_and_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(ok(CHAT, 201))
    code, out, _ = run(api, ["--json", "chats", "create", "--ai-provider-id", "aip_1"], capsys)

    assert code == 0
    assert api.bodies[0] == {"ai_provider_id": "aip_1"}
    assert json.loads(out) == CHAT


# --- list -------------------------------------------------------------------------------------


def test_list_one_page_as_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    page = {"object": "list", "data": [chat(1), chat(2)], "has_more": True, "next_cursor": "cur_2"}
    api = Api(ok(page))
    code, out, err = run(api, ["chats", "list", "--limit", "2"], capsys)

    assert code == 0
    request = api.request  # no --all: one page only
    assert request.method == "GET"
    assert request.url.path == "/v1/chats"
    assert dict(request.url.params) == {"limit": "2"}
    assert_auth(request)
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "AI_PROVIDER_ID", "MODEL", "CREATED_AT"]
    assert lines[1].split() == ["cht_1", "chat", "1", "aip_1", "echo", "2025-01-01T00:00:00Z"]
    assert lines[2].startswith("cht_2")
    assert len(lines) == 3
    assert "--cursor cur_2" in err  # a hint, on stderr


def test_list_json_is_the_api_page_as_is(capsys: pytest.CaptureFixture[str]) -> None:
    page = {"object": "list", "data": [chat(1)], "has_more": False, "next_cursor": None}
    api = Api(ok(page))
    code, out, _ = run(api, ["chats", "list", "--json"], capsys)

    assert code == 0
    assert dict(api.request.url.params) == {}
    assert json.loads(out) == page


def test_list_all_follows_next_cursor_until_has_more_is_false(capsys: pytest.CaptureFixture[str]) -> None:
    pages = {
        None: {"object": "list", "data": [chat(1), chat(2)], "has_more": True, "next_cursor": "cur_a"},
        "cur_a": {"object": "list", "data": [chat(3), chat(4)], "has_more": True, "next_cursor": "cur_b"},
        "cur_b": {"object": "list", "data": [chat(5)], "has_more": False, "next_cursor": None},
    }
    api = Api(lambda request: httpx.Response(200, json=pages[request.url.params.get("cursor")]))
    code, out, _ = run(api, ["--json", "chats", "list", "--all", "--limit", "2"], capsys)

    assert code == 0
    assert [dict(r.url.params) for r in api.requests] == [
        {"limit": "2"},
        {"limit": "2", "cursor": "cur_a"},
        {"limit": "2", "cursor": "cur_b"},
    ]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in api.requests)
    document = json.loads(out)
    assert [c["id"] for c in document["data"]] == ["cht_1", "cht_2", "cht_3", "cht_4", "cht_5"]
    assert document["has_more"] is False and document["next_cursor"] is None

    # and as a table: one header, every chat
    api = Api(lambda request: httpx.Response(200, json=pages[request.url.params.get("cursor")]))
    code, out, _ = run(api, ["chats", "list", "--all"], capsys)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["ID", "cht_1", "cht_2", "cht_3", "cht_4", "cht_5"]


def test_list_all_stops_when_the_api_gives_no_cursor(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(ok({"object": "list", "data": [chat(1)], "has_more": True, "next_cursor": None}))
    code, _, err = run(api, ["chats", "list", "--all"], capsys)

    assert code == 1
    assert len(api.requests) == 1
    assert "next_cursor" in err


# --- get / delete -------------------------------------------------------------------------------


def test_get(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(ok(CHAT))
    code, out, _ = run(api, ["chats", "get", "cht_1"], capsys)

    assert code == 0
    assert api.request.method == "GET"
    assert api.request.url == "http://127.0.0.1:8000/v1/chats/cht_1"
    assert_auth(api.request)
    assert out.splitlines()[0].split() == ["id:", "cht_1"]
    assert "system_message: You are helpful." in out

    api = Api(ok(CHAT))
    code, out, _ = run(api, ["chats", "get", "cht_1", "--json"], capsys)
    assert json.loads(out) == CHAT


def test_ids_are_one_path_segment(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(ok(CHAT))
    run(api, ["chats", "get", "../keys"], capsys)
    assert api.request.url.raw_path == b"/v1/chats/..%2Fkeys"


def test_delete(capsys: pytest.CaptureFixture[str]) -> None:
    deleted = {"id": "cht_1", "object": "chat", "deleted": True}
    api = Api(ok(deleted))
    code, out, _ = run(api, ["chats", "delete", "cht_1"], capsys)

    assert code == 0
    assert api.request.method == "DELETE"
    assert api.request.url == "http://127.0.0.1:8000/v1/chats/cht_1"
    assert_auth(api.request)
    assert out == "Deleted chat cht_1\n"

    api = Api(ok(deleted))
    code, out, _ = run(api, ["--json", "chats", "delete", "cht_1"], capsys)
    assert json.loads(out) == deleted


# --- complete -----------------------------------------------------------------------------------


def chunk(content: str | None, finish_reason: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "echo",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


DONE = b"data: [DONE]\n\n"


def sse(chunks: Iterator[bytes] | list[bytes]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream; charset=utf-8"}, content=iter(chunks))

    return handler


class RecordingStream(io.StringIO):
    """A stdout that logs its writes and flushes into a shared event log."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def write(self, text: str) -> int:
        self.log.append(f"write:{text}")
        return super().write(text)

    def flush(self) -> None:
        self.log.append("flush")
        super().flush()


def test_complete_streams_each_delta_as_it_arrives() -> None:
    log: list[str] = []

    def body() -> Iterator[bytes]:
        # role-only first chunk, then three pieces, a finish chunk, then [DONE]
        for piece in (chunk(None), chunk("Hel"), chunk("lo, "), chunk("world"), chunk(None, "stop"), DONE):
            log.append("received")
            yield piece

    api = Api(sse(body()))
    stdout, stderr = RecordingStream(log), io.StringIO()
    argv = ["chats", "complete", "cht_1", "--message", "Hi", "--system", "Be brief.", "--document-id", "doc_9"]
    argv += ["--message", "And?", "--temperature", "0.5", "--max-tokens", "64"]
    code = main(argv, transport=api.transport, env=ENV, stdout=stdout, stderr=stderr)

    assert code == 0, stderr.getvalue()
    request = api.request
    assert request.method == "POST"
    assert request.url == "http://127.0.0.1:8000/v1/chats/cht_1/completions"
    assert_auth(request)
    assert request.headers["accept"] == "text/event-stream"
    assert api.bodies[0] == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "user", "document_id": "doc_9"},
            {"role": "user", "content": "And?"},
        ],
        "stream": True,
        "temperature": 0.5,
        "max_tokens": 64,
    }
    assert stdout.getvalue() == "Hello, world\n"
    # each delta is written and flushed before the next chunk is read
    assert log[:10] == [
        "received",
        "received",
        "write:Hel",
        "flush",
        "received",
        "write:lo, ",
        "flush",
        "received",
        "write:world",
        "flush",
    ]
    assert stderr.getvalue() == ""
    assert KEY not in stdout.getvalue()


def test_complete_stream_json_prints_the_assembled_text(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(sse([chunk("a"), chunk("b"), chunk(None, "stop"), DONE]))
    code, out, _ = run(api, ["chats", "complete", "cht_1", "--message", "Hi", "--json"], capsys)

    assert code == 0
    assert json.loads(out) == {"content": "ab", "finish_reason": "stop"}
    assert api.bodies[0] == {"messages": [{"role": "user", "content": "Hi"}], "stream": True}


def test_complete_stream_keeps_unicode_line_separators(capsys: pytest.CaptureFixture[str]) -> None:
    """Parley's streams are ensure_ascii=False: U+2028 arrives raw inside a data line and must not end it."""
    raw = chunk("a\u2028b").replace(b"\\u2028", "\u2028".encode()) + chunk("\u00e9") + DONE
    assert "\u2028".encode() in raw
    api = Api(sse([raw[:7], raw[7:]]))
    code, out, err = run(api, ["chats", "complete", "cht_1", "--message", "Hi"], capsys)

    assert code == 0, err
    assert out == "a\u2028b\u00e9\n"


def test_complete_no_stream(capsys: pytest.CaptureFixture[str]) -> None:
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "echo",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi back"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    api = Api(ok(completion))
    code, out, _ = run(api, ["chats", "complete", "cht_1", "--message", "Hi", "--no-stream"], capsys)

    assert code == 0
    assert api.request.headers["accept"] == "application/json"
    assert api.bodies[0] == {"messages": [{"role": "user", "content": "Hi"}], "stream": False}
    assert out == "Hi back\n"

    api = Api(ok(completion))
    code, out, _ = run(api, ["chats", "complete", "cht_1", "--message", "Hi", "--no-stream", "--json"], capsys)
    assert json.loads(out) == completion


def test_complete_needs_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(ok({}))
    code, _, err = run(api, ["chats", "complete", "cht_1"], capsys)
    assert code == 2
    assert "--message" in err
    assert api.requests == []


@pytest.mark.parametrize(
    "error_event",
    [
        # the brief's shape, and what parley.api.streaming sends (a named event with a type)
        b'data: {"error": {"type": "api_error", "code": "provider_error", "message": "Upstream failed",'
        b' "param": null, "request_id": "req_s1"}}\n\n',
        b'event: error\ndata: {"type": "error", "error": {"type": "api_error", "code": "provider_error",'
        b' "message": "Upstream failed", "param": null, "request_id": "req_s1"}}\n\n',
    ],
)
def test_an_error_mid_stream_exits_1(error_event: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(sse([chunk("partial "), chunk("text"), error_event]))
    code, out, err = run(api, ["chats", "complete", "cht_1", "--message", "Hi"], capsys)

    assert code == 1
    assert out == "partial text\n"
    assert err == "error: Upstream failed (provider_error) [request req_s1]\n"


def test_a_stream_without_done_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(sse([chunk("cut")]))
    code, out, err = run(api, ["chats", "complete", "cht_1", "--message", "Hi"], capsys)

    assert code == 1
    assert out == "cut\n"
    assert "[DONE]" in err


def test_a_broken_connection_mid_stream_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> Iterator[bytes]:
        yield chunk("so far")
        raise httpx.ReadError("connection reset")

    api = Api(sse(body()))
    code, out, err = run(api, ["chats", "complete", "cht_1", "--message", "Hi"], capsys)

    assert code == 1
    assert out == "so far\n"
    assert "ReadError" in err and "connection reset" in err


def test_an_error_before_the_stream_starts(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(api_error(404, "chat_not_found", "No chat cht_x.", "chat_id", "req_9"))
    code, out, err = run(api, ["chats", "complete", "cht_x", "--message", "Hi"], capsys)

    assert code == 1
    assert out == ""
    assert err == "error: No chat cht_x. (chat_not_found, param chat_id) [request req_9]\n"


def test_sse_lines_and_events() -> None:
    """CRLF and CR line ends, lines and UTF-8 characters split across chunks, comments, multi-line
    data, and U+2028 (which str.splitlines, and so httpx's iter_lines, would split on), read by
    the client's stream as it arrives."""
    text = 'data: {"c": "a\u2028b é"}\r\n\r\n: ping\n\nevent: note\ndata: one\ndata: two\r\rdata: [DONE]\n\n'
    raw = text.encode()
    split_at = [3, raw.index(b"\r") + 1, raw.index("é".encode()) + 1, len(raw) - 5]
    pieces = [raw[a:b] for a, b in zip([0, *split_at], [*split_at, len(raw)], strict=True)]

    client = ParleyClient("http://127.0.0.1:8000", KEY, transport=Api(sse(pieces)).transport)
    with client.stream("POST", "/v1/chats/cht_1/completions", json_body={}) as events:
        seen = [(event.event, event.data) for event in events]

    assert seen == [("message", '{"c": "a\u2028b é"}'), ("note", "one\ntwo"), ("message", "[DONE]")]
    assert parse_event(ServerSentEvent(data=seen[0][1])) == {"c": "a\u2028b é"}


# --- errors, configuration, the key -------------------------------------------------------------


def test_api_error(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(api_error(400, "invalid_request", "name: too long", "name", "req_123"))
    code, out, err = run(api, ["chats", "create", "--ai-provider-id", "aip_1", "--name", "x" * 300], capsys)

    assert code == 1
    assert out == ""
    assert err == "error: name: too long (invalid_request, param name) [request req_123]\n"


def test_api_error_without_param_or_request_id_in_body(capsys: pytest.CaptureFixture[str]) -> None:
    body = {"error": {"type": "not_found_error", "code": "not_found", "message": "No such chat.", "param": None}}
    api = Api(lambda request: httpx.Response(404, json=body, headers={"x-request-id": "req_hdr"}))
    code, _, err = run(api, ["--json", "chats", "get", "cht_x"], capsys)

    assert code == 1
    assert err == "error: No such chat. (not_found) [request req_hdr]\n"


def test_non_json_error(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(lambda request: httpx.Response(502, text="<html>Bad Gateway</html>"))
    code, _, err = run(api, ["chats", "get", "cht_1"], capsys)

    assert code == 1
    assert err.startswith("error: HTTP 502 Bad Gateway")


def test_missing_key_exits_2_without_a_request(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(ok(CHAT))
    code, out, err = run(api, ["chats", "get", "cht_1"], capsys, env={})

    assert code == 2
    assert api.requests == []
    assert out == ""
    assert "PARLEY_API_KEY" in err and "--api-key" in err


def test_missing_key_reads_the_real_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARLEY_API_KEY", raising=False)
    api = Api(ok(CHAT))
    assert main(["chats", "get", "cht_1"], transport=api.transport) == 2

    monkeypatch.setenv("PARLEY_API_KEY", KEY)
    monkeypatch.setenv("PARLEY_API_URL", "https://parley.example.com/prod/")
    assert main(["chats", "get", "cht_1"], transport=api.transport) == 0
    assert str(api.request.url) == "https://parley.example.com/prod/v1/chats/cht_1"
    assert_auth(api.request)


def test_options_override_the_environment_and_may_follow_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    other_key = "prl_other_key_123456"
    api = Api(ok(CHAT))
    env = {"PARLEY_API_KEY": "prl_env_key_00000000", "PARLEY_API_URL": "http://env.invalid"}
    argv = ["chats", "get", "cht_1", "--api-key", other_key, "--api-url", "http://localhost:9000", "--json"]
    argv += ["--timeout", "5"]
    code, out, _ = run(api, argv, capsys, env=env)

    assert code == 0
    assert str(api.request.url) == "http://localhost:9000/v1/chats/cht_1"
    assert api.request.headers["authorization"] == f"Bearer {other_key}"
    assert api.request.extensions["timeout"]["read"] == 5.0
    assert json.loads(out) == CHAT


def test_connection_errors_and_timeouts(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    code, out, err = run(Api(refuse), ["chats", "list"], capsys)
    assert code == 1
    assert out == ""
    assert err == "error: cannot connect to http://127.0.0.1:8000: Connection refused\n"

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    code, _, err = run(Api(slow), ["chats", "list"], capsys)
    assert code == 1
    assert "timed out" in err


def test_the_key_is_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """Even when the API, an exception or a traceback carries it (run() checks every output)."""
    echo = api_error(401, "invalid_api_key", f"Bad key {KEY}", "Authorization", "req_k")
    code, _, err = run(Api(echo), ["chats", "get", "cht_1"], capsys)
    assert code == 1
    assert err == "error: Bad key *** (invalid_api_key, param Authorization) [request req_k]\n"

    code, out, _ = run(Api(ok({**CHAT, "name": KEY})), ["--json", "chats", "get", "cht_1"], capsys)
    assert code == 0
    assert json.loads(out)["name"] == "***"

    def bug(request: httpx.Request) -> httpx.Response:
        raise RuntimeError(f"unexpected: {request.headers['authorization']}")

    code, _, err = run(Api(bug), ["chats", "list"], capsys)
    assert code == 1
    assert "Traceback" in err and "Bearer ***" in err
    assert "bug in the parley CLI" in err

    code, _, err = run(Api(ok({})), ["chats", "get", "cht_1", "--api-key", f"{KEY}\n"], capsys)
    assert code == 2


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"], env={}) == 0
    out = capsys.readouterr().out
    assert "chats" in out and "--api-url" in out and "PARLEY_API_KEY" in out

    assert main(["chats", "--help"], env={}) == 0
    out = capsys.readouterr().out
    for command in ("create", "list", "get", "delete", "complete"):
        assert command in out

    assert main([], env={}) == 2
    assert "usage: parley" in capsys.readouterr().err


def test_an_api_url_ending_in_v1_is_accepted() -> None:
    import httpx

    from parley.cli import main

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"object": "list", "data": [], "has_more": False, "next_cursor": None})

    code = main(
        ["--api-url", "https://api.example.com/prod/v1/", "--json", "chats", "list"],
        transport=httpx.MockTransport(handler),
        env={"PARLEY_API_KEY": "prl_key_for_url_test"},
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert code == 0
    assert seen[0].startswith("https://api.example.com/prod/v1/chats")
