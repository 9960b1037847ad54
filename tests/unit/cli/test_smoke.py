"""The smoke runner's own behaviour, against a fake API (httpx.MockTransport): a failing check
fails the run (exit 1) and skips the checks that depend on it, cleanup deletes everything created
so far even then, nothing it prints carries the API key (even when the server echoes it back),
and a missing receiver skips the webhook rows."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

import httpx

from parley.cli import smoke

KEY = "prl_smoke_unit_key_0123456789"
PREFIX = {"conversations": "conv", "providers": "aip", "chats": "cht", "documents": "doc", "indexes": "idx"}


class FakeApi:
    """Just enough of Parley for each check to pass; `broken` maps (method, path regex) to a reply."""

    def __init__(self, broken: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] | None = None) -> None:
        self.broken = broken or {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.keys_seen: set[str] = set()
        self.word = ""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.keys_seen.add(request.headers.get("authorization", ""))
        method, path = request.method, request.url.path.removeprefix("/prod")  # the stage's base path
        for (m, pattern), reply in self.broken.items():
            if m == method and re.fullmatch(pattern, path):
                return reply(request)
        body: Any = json.loads(request.content) if request.content else {}
        return self.answer(method, path, body)

    def answer(self, method: str, path: str, body: Any) -> httpx.Response:
        parts = path.strip("/").split("/")[1:]
        if method == "DELETE":
            self.deleted.append(parts[-1])
            return httpx.Response(200, json={"deleted": True})
        if path == "/v1/health":
            return httpx.Response(200, json={"status": "ok"})
        if path == "/v1/chat/completions" or path.endswith("/completions"):
            if body.get("stream"):
                chunk = {"choices": [{"delta": {"content": "hi"}}]}
                text = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
                return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
            last = body["messages"][-1]
            content = last.get("content") or f"document {self.word}"
            citations = [{"document_id": f"smoke-{RUN}"}] if body.get("use_rag") else []
            answer = {"model": "echo", "choices": [{"message": {"content": content}}], "citations": citations}
            return httpx.Response(200, json=answer)
        if len(parts) == 1 and method == "POST":
            new_id = f"{PREFIX.get(parts[0], 'whk')}_{len(self.created)}"
            self.created.append(new_id)
            return httpx.Response(201, json={"id": new_id})
        if parts[:2] == ["search", "messages"]:
            return httpx.Response(200, json={"data": [{"conversation_id": "conv_0"}]})
        if parts[-1] == "messages" and method == "POST":
            if body.get("stream"):
                text = "event: start\ndata: {}\n\nevent: text\ndata: {}\n\nevent: done\ndata: {}\n\n"
                return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
            self.word = body["content"].rsplit(" ", 1)[-1]
            return httpx.Response(200, json={"role": "assistant", "status": "completed", "content": "ok"})
        if parts[-1] == "messages":
            data = [{"role": r, "status": "completed"} for r in ("user", "assistant", "user", "assistant")]
            return httpx.Response(200, json={"data": data})
        if parts[-1] == "context":
            return httpx.Response(200, json={"total_messages": 4, "last_call": {"tokens": 3}})
        if parts[-1] == "documents":
            return httpx.Response(201, json={"status": "ready"})
        if parts[-1] == "query":
            return httpx.Response(200, json={"data": [{"document_id": f"smoke-{RUN}", "score": 1.0}]})
        raise AssertionError(f"the fake API has no {method} {path}")


RUN = "20260101000000-abcdef"


def run(api: FakeApi, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    environment = {
        "API_URL": "https://api.example.com/prod/v1",
        "API_KEY": KEY,
        "SMOKE_POLL_SECONDS": "2",
        **(env or {}),
    }
    original = smoke.new_run_id
    smoke.new_run_id = lambda: RUN  # type: ignore[assignment]
    try:
        code = smoke.main(list(args), env=environment, transport=httpx.MockTransport(api), stdout=out, stderr=err)
    finally:
        smoke.new_run_id = original  # type: ignore[assignment]
    return code, out.getvalue(), err.getvalue()


def rows(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()[1:]]


def test_every_check_passes_against_a_working_api_and_the_webhook_rows_skip_without_a_receiver() -> None:
    api = FakeApi()
    code, out, _ = run(api, "--json")
    found = rows(out)
    assert code == 0
    assert {r["status"] for r in found if r["section"] != "webhook"} == {"pass"}
    assert [r["status"] for r in found if r["section"] == "webhook"] == ["skip", "skip", "skip"]
    assert sorted(api.deleted) == sorted(api.created)  # everything created is deleted
    assert api.keys_seen == {f"Bearer {KEY}"}


def test_a_failed_check_fails_the_run_skips_its_dependants_and_cleanup_still_deletes_everything() -> None:
    def echo_the_key(request: httpx.Request) -> httpx.Response:  # a server that reflects the header
        error = {"type": "api_error", "code": "internal", "message": f"boom for {request.headers['authorization']}"}
        return httpx.Response(500, json={"error": error})

    api = FakeApi({("POST", "/v1/indexes"): echo_the_key, ("POST", r"/v1/chats/[^/]+/completions"): echo_the_key})
    code, out, err = run(api)
    assert code == 1
    assert KEY not in out + err
    assert "[api key]" in out
    table = {line.split("  ")[0].strip(): line for line in out.splitlines()[2:-1]}
    assert " fail " in table["index: create"]
    assert "after 'create' failed" in table["index: query"]
    assert " fail " in table["chat: complete"]
    assert " pass " in table["document: referenced by a message"]  # other flows still ran
    assert out.splitlines()[-1].startswith("smoke FAILED:")
    assert sorted(api.deleted) == sorted(api.created)
    assert len([line for line in table if line.startswith("cleanup: delete ")]) == len(api.created)


def test_cleanup_runs_when_the_api_goes_away_mid_run() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api = FakeApi({("POST", "/v1/documents"): refused, ("DELETE", "/v1/providers/.*"): refused})
    code, out, _ = run(api, "--json")
    found = {f"{r['section']}: {r['name']}": r for r in rows(out)}
    assert code == 1
    assert found["document: create"]["status"] == "fail"
    assert "ConnectError" in found["document: create"]["detail"]
    assert found["cleanup: delete provider aip_1"]["status"] == "fail"  # reported, and the rest went on
    assert sorted([*api.deleted, "aip_1"]) == sorted(api.created)


def test_a_missing_key_or_url_is_a_usage_error() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert smoke.main([], env={"API_URL": "https://x.example.com"}, stdout=out, stderr=err) == 2
    assert "API key is required" in err.getvalue()
    assert smoke.main([], env={"API_KEY": KEY}, stdout=out, stderr=err) == 2
    assert "API URL" in err.getvalue()
