"""The smoke suite: Parley's main flows end to end over HTTP(S), against any deployment.

    python -m parley.cli.smoke --api-url https://.../prod --api-key prl_... [--receiver-url https://...]
    make smoke API_URL=... API_KEY=... [RECEIVER_URL=...]

Health; a completion buffered and streamed; a conversation with history (a buffered and a streamed
send, its messages, its context); message search (a unique word, polled until found); a chat on an
echo provider; a stored document referenced by a message; a knowledge index (add, query, a
completion with `use_rag` and its citations); a webhook delivered to `--receiver-url` (the
synchronous test delivery and an event through the whole pipeline: stream, emitter, bus, queues,
dispatcher; skipped without a receiver). Prints one row per check (section, check, status, ms,
detail) and exits 1 when any check failed.

Everything it creates is named `smoke-<run id>` and deleted at the end, failure or not (the
`cleanup` rows). The API key goes in the Authorization header only; no output contains it.
It ships with the package (the `parley-smoke` command), so an operator runs it from wherever
Parley is installed, and uses only what the package already depends on (httpx, httpx-sse).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import quote

import httpx
from httpx_sse import EventSource

from parley import __version__

Status = Literal["pass", "fail", "skip"]
JsonObject = dict[str, Any]
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
USER_AGENT = f"parley-smoke/{__version__}"


@dataclass(frozen=True)
class Row:
    section: str
    name: str
    status: Status
    ms: int
    detail: str


@dataclass(frozen=True)
class Options:
    api_url: str
    api_key: str
    receiver_url: str | None = None
    model: str = "echo"
    embedding_model: str = "local"
    timeout: float = 60.0  # per request
    poll_seconds: float = 45.0  # search indexing and webhook delivery are asynchronous
    run_id: str = ""


class CheckFailed(Exception):
    """A check's expectation did not hold; its message is the row's detail."""


class Skip(Exception):
    """A check that does not apply to this run (no receiver URL)."""


@dataclass
class Reply:
    status: int
    body: Any
    headers: httpx.Headers


def new_run_id() -> str:
    """UTC time and 6 random hex digits: sortable, and unique across concurrent runs."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3)


def _segment(value: str) -> str:
    return quote(value, safe="")


@dataclass
class Smoke:
    """One run of the suite. `rows` fills as checks finish; `cleanup` holds (what, path) for every
    resource created, deleted in reverse order at the end."""

    options: Options
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    rows: list[Row] = field(default_factory=list)
    cleanup: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run_id = self.options.run_id or new_run_id()
        self.name = f"smoke-{self.run_id}"
        # a word no other message contains, for message search (letters only: one BM25 token)
        self.word = "smokeword" + "".join(chr(ord("a") + int(c, 16)) for c in secrets.token_hex(5))
        self.http = httpx.Client(
            base_url=self.options.api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {self.options.api_key}", "User-Agent": USER_AGENT},
            timeout=self.options.timeout,
            transport=self.transport,
        )
        self.state: dict[str, str] = {}

    # -- HTTP --------------------------------------------------------------------------------

    def call(self, method: str, path: str, body: JsonObject | None = None, **params: str) -> Reply:
        try:
            response = self.http.request(method, path, json=body, params=params or None)
        except httpx.HTTPError as exc:  # messages name the URL, never the headers
            raise CheckFailed(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        try:
            parsed: Any = response.json() if response.content else None
        except ValueError:
            parsed = response.text[:200]
        return Reply(response.status_code, parsed, response.headers)

    def expect(self, method: str, path: str, body: JsonObject | None = None, status: int = 200, **params: str) -> Any:
        reply = self.call(method, path, body, **params)
        if reply.status != status:
            raise CheckFailed(f"{method} {path}: HTTP {reply.status}, expected {status}: {_error_text(reply.body)}")
        return reply.body

    def created(self, what: str, body: Any, path_of: Callable[[str], str]) -> str:
        """The id of a 201's resource, queued for cleanup."""
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise CheckFailed(f"the created {what} has no id")
        resource_id: str = body["id"]
        self.cleanup.append((f"{what} {resource_id}", path_of(resource_id)))
        return resource_id

    def events(self, path: str, body: JsonObject) -> Iterator[tuple[str, str]]:
        """(event name, data) of a server-sent event stream; an error status raises CheckFailed."""
        headers = {"Accept": "text/event-stream"}
        try:
            with self.http.stream("POST", path, json=body, headers=headers) as response:
                if response.status_code != 200:
                    response.read()
                    raise CheckFailed(f"POST {path}: HTTP {response.status_code}: {response.text[:300]}")
                kind = response.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    raise CheckFailed(f"POST {path}: content type {kind!r}, expected text/event-stream")
                for event in EventSource(response).iter_sse():
                    yield event.event, event.data
        except httpx.HTTPError as exc:
            raise CheckFailed(f"POST {path}: stream broke: {type(exc).__name__}: {exc}") from None

    def poll(self, what: str, probe: Callable[[], str | None]) -> str:
        """Call `probe` until it answers a detail (not None), within the poll budget."""
        deadline = time.monotonic() + self.options.poll_seconds
        tries = 0
        while True:
            tries += 1
            found = probe()
            if found is not None:
                return f"{found} (try {tries})"
            if time.monotonic() >= deadline:
                raise CheckFailed(f"{what}: not within {self.options.poll_seconds:g} s ({tries} tries)")
            self.sleep(min(0.5 * tries, 2.0))

    # -- running -------------------------------------------------------------------------------

    def check(self, section: str, name: str, step: Callable[[], str]) -> bool:
        started = time.monotonic()
        status: Status
        try:
            detail, status = step(), "pass"
        except Skip as exc:
            detail, status = str(exc), "skip"
        except CheckFailed as exc:
            detail, status = str(exc), "fail"
        except Exception as exc:  # noqa: BLE001 - a bug or an unexpected answer: a failed row, not a crash
            detail, status = f"unexpected {type(exc).__name__}: {exc}", "fail"
        ms = round((time.monotonic() - started) * 1000)
        self.rows.append(Row(section, name, status, ms, self.redact(detail)))
        return status == "pass"

    def flow(self, section: str, steps: list[tuple[str, Callable[[], str]]]) -> None:
        """Steps that depend on each other: after a failure the rest are skipped, saying why."""
        stopped: str | None = None
        for name, step in steps:
            if stopped is not None:
                self.rows.append(Row(section, name, "skip", 0, stopped))
                continue
            if not self.check(section, name, step):
                last = self.rows[-1]
                stopped = last.detail if last.status == "skip" else f"after {name!r} failed"

    def redact(self, text: str) -> str:
        key = self.options.api_key
        return text.replace(key, "[api key]") if key else text

    def run(self) -> list[Row]:
        try:
            self.flow("health", [("GET /v1/health", self.health)])
            self.flow("completion", [("buffered", self.completion), ("streamed", self.completion_streamed)])
            self.flow(
                "conversation",
                [
                    ("create", self.conversation_create),
                    ("send (buffered)", self.conversation_send),
                    ("send (streamed)", self.conversation_send_streamed),
                    ("list messages", self.conversation_messages),
                    ("context", self.conversation_context),
                ],
            )
            if "conversation" in self.state:
                self.flow("search", [("message found", self.search)])
            else:
                self.rows.append(Row("search", "message found", "skip", 0, "no conversation to search"))
            self.flow(
                "chat",
                [
                    ("provider (echo)", self.provider_create),
                    ("create", self.chat_create),
                    ("complete", self.chat_complete),
                ],
            )
            self.flow(
                "document",
                [("create", self.document_create), ("referenced by a message", self.document_referenced)],
            )
            self.flow(
                "index",
                [
                    ("create", self.index_create),
                    ("add a document", self.index_add),
                    ("query", self.index_query),
                    ("completion with use_rag", self.index_rag),
                ],
            )
            self.flow(
                "webhook",
                [
                    ("create", self.webhook_create),
                    ("test delivery", self.webhook_test),
                    ("event delivery", self.webhook_event),
                ],
            )
        finally:
            self.clean_up()
            self.http.close()
        return self.rows

    def clean_up(self) -> None:
        """Delete what the run created, newest first; a 404 counts as deleted."""
        for what, path in reversed(self.cleanup):

            def delete(path: str = path) -> str:
                reply = self.call("DELETE", path)
                if reply.status in (200, 204):
                    return "deleted"
                if reply.status == 404:
                    return "already gone"
                raise CheckFailed(f"DELETE {path}: HTTP {reply.status}: {_error_text(reply.body)}")

            self.check("cleanup", f"delete {what}", delete)
        self.cleanup.clear()

    # -- checks --------------------------------------------------------------------------------

    def health(self) -> str:
        body = self.expect("GET", "/v1/health")
        return f"status {body.get('status') if isinstance(body, dict) else body!r}"

    def _completion_body(self, text: str, **extra: Any) -> JsonObject:
        return {"model": self.options.model, "messages": [{"role": "user", "content": text}], **extra}

    def completion(self) -> str:
        body = self.expect("POST", "/v1/chat/completions", self._completion_body(f"{self.name}: say hello"))
        content = body["choices"][0]["message"]["content"]
        if not content:
            raise CheckFailed("the completion has no content")
        return f"{body.get('model')}: {len(content)} chars, {body.get('usage', {}).get('total_tokens')} tokens"

    def completion_streamed(self) -> str:
        chunks, text, done = 0, "", False
        for _, data in self.events("/v1/chat/completions", self._completion_body(f"{self.name}: stream", stream=True)):
            if data.strip() == "[DONE]":
                done = True
                continue
            chunk = json.loads(data)
            if "error" in chunk:
                raise CheckFailed(f"the stream failed: {_error_text(chunk)}")
            chunks += 1
            for choice in chunk.get("choices", []):
                text += (choice.get("delta") or {}).get("content") or ""
        if not done:
            raise CheckFailed(f"the stream ended without [DONE] after {chunks} chunks")
        if not text:
            raise CheckFailed("the stream carried no content")
        return f"{chunks} chunks, {len(text)} chars, [DONE]"

    def conversation_create(self) -> str:
        body = {"title": self.name, "user_id": self.name, "metadata": {"smoke_run": self.run_id}}
        if self.options.model != "echo":
            body["model"] = self.options.model
        created = self.expect("POST", "/v1/conversations", body, status=201)
        self.state["conversation"] = self.created("conversation", created, lambda i: f"/v1/conversations/{_segment(i)}")
        return self.state["conversation"]

    def _messages_path(self) -> str:
        return f"/v1/conversations/{_segment(self.state['conversation'])}/messages"

    def conversation_send(self) -> str:
        text = f"{self.name}: remember the word {self.word}"
        reply = self.expect("POST", self._messages_path(), {"content": text})  # the stored reply
        if reply.get("role") != "assistant" or reply.get("status") != "completed" or not reply.get("content"):
            raise CheckFailed(f"the reply is {reply.get('role')!r}, {reply.get('status')!r}, {reply.get('error')}")
        return f"reply {reply.get('id')} ({len(reply['content'])} chars)"

    def conversation_send_streamed(self) -> str:
        names: list[str] = []
        for name, data in self.events(
            self._messages_path(), {"content": "What word did I ask you to remember?", "stream": True}
        ):
            names.append(name or json.loads(data).get("type", ""))
            if name == "error":
                raise CheckFailed(f"the stream failed: {data[:300]}")
        if not names or names[0] != "start" or names[-1] != "done" or "text" not in names:
            raise CheckFailed(f"events {names[:3]}...{names[-2:]}, expected start, text..., done")
        return f"{len(names)} events: start, {names.count('text')} text, done"

    def conversation_messages(self) -> str:
        page = self.expect("GET", self._messages_path(), order="asc", limit="10")
        roles = [m.get("role") for m in page.get("data", [])]
        if roles != ["user", "assistant", "user", "assistant"]:
            raise CheckFailed(f"history roles {roles}, expected user, assistant, user, assistant")
        statuses = {m.get("status") for m in page["data"]}
        if statuses != {"completed"}:
            raise CheckFailed(f"message statuses {sorted(map(str, statuses))}")
        return "4 messages in order"

    def conversation_context(self) -> str:
        path = f"/v1/conversations/{_segment(self.state['conversation'])}/context"
        context = self.expect("GET", path)
        if context.get("total_messages") != 4:
            raise CheckFailed(f"total_messages {context.get('total_messages')}, expected 4")
        last_call = context.get("last_call") or {}
        if not last_call:
            raise CheckFailed("the context shows no last call")
        used, tokens = context.get("context_messages"), context.get("context_tokens")
        return f"{context.get('strategy')}: {used} messages, {tokens} tokens"

    def search(self) -> str:
        conversation = self.state["conversation"]

        def probe() -> str | None:
            page = self.expect("GET", "/v1/search/messages", q=self.word, conversation_id=conversation)
            hits = [h for h in page.get("data", []) if h.get("conversation_id") == conversation]
            return f"{len(hits)} hits" if hits else None

        return self.poll(f"a message with {self.word!r} in search", probe)

    def provider_create(self) -> str:
        created = self.expect(
            "POST", "/v1/providers", {"type": "echo", "name": self.name, "default_model": "echo"}, status=201
        )
        self.state["provider"] = self.created("provider", created, lambda i: f"/v1/providers/{_segment(i)}")
        return self.state["provider"]

    def chat_create(self) -> str:
        body = {"ai_provider_id": self.state["provider"], "name": self.name, "system_message": "You are a smoke test."}
        created = self.expect("POST", "/v1/chats", body, status=201)
        self.state["chat"] = self.created("chat", created, lambda i: f"/v1/chats/{_segment(i)}")
        return self.state["chat"]

    def chat_complete(self) -> str:
        path = f"/v1/chats/{_segment(self.state['chat'])}/completions"
        body = self.expect("POST", path, {"messages": [{"role": "user", "content": f"{self.name}: hello chat"}]})
        content = body["choices"][0]["message"]["content"]
        if "hello chat" not in (content or ""):
            raise CheckFailed(f"the echo provider answered {content!r}")
        return f"{len(content)} chars"

    def document_create(self) -> str:
        content = f"# {self.name}\n\nThe smoke document's code is {self.word}."
        body = {"name": f"{self.name}.md", "media_type": "text/markdown", "content": content}
        created = self.expect("POST", "/v1/documents", body, status=201)
        self.state["document"] = self.created("document", created, lambda i: f"/v1/documents/{_segment(i)}")
        return self.state["document"]

    def document_referenced(self) -> str:
        """A completion whose user message is the document: the echo model answers its text."""
        message = {"role": "user", "document_id": self.state["document"]}
        body = self.expect("POST", "/v1/chat/completions", {"model": "echo", "messages": [message]})
        content = body["choices"][0]["message"]["content"] or ""
        if self.word not in content:
            raise CheckFailed("the model did not receive the document's text")
        return "the model received the document's text"

    def index_create(self) -> str:
        body = {
            "name": self.name,
            "embedding_model": self.options.embedding_model,
            "metadata": {"smoke_run": self.run_id},
        }
        created = self.expect("POST", "/v1/indexes", body, status=201)
        self.state["index"] = self.created("index", created, lambda i: f"/v1/indexes/{_segment(i)}")
        return f"{self.state['index']} ({created.get('embedding_model')}, {created.get('dimensions')} dimensions)"

    def index_add(self) -> str:
        path = f"/v1/indexes/{_segment(self.state['index'])}/documents"
        text = f"# Smoke refunds\n\nRefunds for order {self.word} are paid within 30 days of purchase."
        reply = self.call("POST", path, {"id": self.name, "text": text, "media_type": "text/markdown"})
        if reply.status not in (200, 201, 202):
            raise CheckFailed(f"POST {path}: HTTP {reply.status}: {_error_text(reply.body)}")
        if reply.body.get("status") == "ready":
            return "ready"
        if reply.body.get("status") == "failed":
            raise CheckFailed(f"ingestion failed: {reply.body.get('error')}")

        def probe() -> str | None:  # 202: the ingestion worker finishes it
            document = self.expect("GET", f"{path}/{_segment(self.name)}")
            if document.get("status") == "failed":
                raise CheckFailed(f"ingestion failed: {document.get('error')}")
            return "ready" if document.get("status") == "ready" else None

        return self.poll("the document ready", probe)

    def index_query(self) -> str:
        path = f"/v1/indexes/{_segment(self.state['index'])}/query"
        body = self.expect("POST", path, {"query": f"When are refunds for order {self.word} paid?", "top_k": 3})
        hits = body.get("data") or body.get("results") or []
        if not any(h.get("document_id") == self.name for h in hits):
            raise CheckFailed(f"the query found {len(hits)} chunks, none of the smoke document")
        return f"{len(hits)} chunks, top score {hits[0].get('score')}"

    def index_rag(self) -> str:
        body = self._completion_body(
            f"When are refunds for order {self.word} paid?", use_rag=True, index_id=self.state["index"]
        )
        answer = self.expect("POST", "/v1/chat/completions", body)
        citations = answer.get("citations") or []
        if not any(c.get("document_id") == self.name for c in citations):
            raise CheckFailed(f"{len(citations)} citations, none of the smoke document")
        return f"{len(citations)} citations"

    def webhook_create(self) -> str:
        if not self.options.receiver_url:
            raise Skip("no receiver URL (--receiver-url, RECEIVER_URL)")
        body = {
            "url": self.options.receiver_url,
            "event_types": ["webhook.test", "chat.conversation_created"],
            "description": self.name,
        }
        created = self.expect("POST", "/v1/webhooks", body, status=201)
        self.state["webhook"] = self.created("webhook", created, lambda i: f"/v1/webhooks/{_segment(i)}")
        return self.state["webhook"]

    def webhook_test(self) -> str:
        if "webhook" not in self.state:
            raise Skip("no webhook")
        delivery = self.expect("POST", f"/v1/webhooks/{_segment(self.state['webhook'])}/test")
        if delivery.get("status") != "succeeded":
            raise CheckFailed(
                f"the test delivery is {delivery.get('status')!r}: HTTP {delivery.get('last_status_code')}, "
                f"{delivery.get('last_error')}"
            )
        return f"HTTP {delivery.get('last_status_code')} in {delivery.get('last_latency_ms')} ms"

    def webhook_event(self) -> str:
        """A conversation created after the webhook: its event goes stream -> emitter -> bus -> queues ->
        dispatcher -> the receiver; the webhook's delivery log shows it succeeded."""
        if "webhook" not in self.state:
            raise Skip("no webhook")
        created = self.expect("POST", "/v1/conversations", {"title": f"{self.name} webhook"}, status=201)
        self.created("conversation", created, lambda i: f"/v1/conversations/{_segment(i)}")
        path = f"/v1/webhooks/{_segment(self.state['webhook'])}/deliveries"

        def probe() -> str | None:
            page = self.expect("GET", path, limit="20")
            events = [d for d in page.get("data", []) if d.get("event_type") == "chat.conversation_created"]
            failed = [d for d in events if d.get("status") == "failed"]
            if failed:
                raise CheckFailed(f"delivery {failed[0].get('id')} failed: {failed[0].get('last_error')}")
            done = [d for d in events if d.get("status") == "succeeded"]
            return f"{done[0].get('id')}: HTTP {done[0].get('last_status_code')}" if done else None

        return self.poll("a succeeded chat.conversation_created delivery", probe)


def _error_text(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return f"{error.get('code') or error.get('type')}: {str(error.get('message'))[:200]}"
    return str(body)[:200]


def render(rows: list[Row], out: TextIO) -> None:
    """The pass/fail table, then one summary line."""
    width = max([len(f"{r.section}: {r.name}") for r in rows] + [5])
    out.write(f"{'check':<{width}}  {'status':<6}  {'ms':>6}  detail\n")
    for row in rows:
        out.write(f"{f'{row.section}: {row.name}':<{width}}  {row.status:<6}  {row.ms:>6}  {row.detail}\n")
    counts = {status: sum(r.status == status for r in rows) for status in ("pass", "fail", "skip")}
    verdict = "FAILED" if counts["fail"] else "PASSED"
    out.write(f"smoke {verdict}: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley-smoke",
        description="Run Parley's main flows end to end against a deployment and print a pass/fail table.",
        epilog=(
            "Each option also comes from the environment: API_URL (or PARLEY_API_URL), API_KEY (or\n"
            "PARLEY_API_KEY), RECEIVER_URL, SMOKE_MODEL, SMOKE_EMBEDDING_MODEL, SMOKE_POLL_SECONDS.\n"
            "Pass the key through the environment: a command line is visible to other users."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--api-url", help="the API's base URL (https://.../<stage>; /v1 may be left off)")
    parser.add_argument("--api-key", help="an API key of the project to test (permissions: *)")
    parser.add_argument("--receiver-url", help="a URL that answers webhook POSTs with 2xx (else: skipped)")
    parser.add_argument("--model", help="the completion and conversation model (default echo)")
    parser.add_argument("--embedding-model", help="the knowledge index's embedding model (default local)")
    parser.add_argument("--poll-seconds", type=float, help="how long to wait for search and webhooks (default 45)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, in seconds (default 60)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines instead of a table")
    return parser


def options_from(args: argparse.Namespace, env: Mapping[str, str]) -> Options | str:
    """The run's options, or what is wrong with them."""
    api_url = args.api_url or env.get("API_URL") or env.get("PARLEY_API_URL") or ""
    api_key = args.api_key or env.get("API_KEY") or env.get("PARLEY_API_KEY") or ""
    if not api_url.startswith(("http://", "https://")):
        return "an API URL (http:// or https://) is required: --api-url or API_URL"
    if not api_key:
        return "an API key is required: --api-key or API_KEY"
    if not (api_key.isascii() and api_key.isprintable() and not any(c.isspace() for c in api_key)):
        return "the API key has characters an HTTP header cannot carry"
    poll = args.poll_seconds if args.poll_seconds is not None else float(env.get("SMOKE_POLL_SECONDS") or 45)
    return Options(
        api_url=api_url.rstrip("/").removesuffix("/v1"),
        api_key=api_key,
        receiver_url=args.receiver_url or env.get("RECEIVER_URL") or None,
        model=args.model or env.get("SMOKE_MODEL") or "echo",
        embedding_model=args.embedding_model or env.get("SMOKE_EMBEDDING_MODEL") or "local",
        timeout=args.timeout,
        poll_seconds=poll,
    )


def main(
    argv: list[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    env = os.environ if env is None else env
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    options = options_from(args, env)
    if isinstance(options, str):
        stderr.write(f"parley-smoke: {options}\n")
        return EXIT_USAGE
    smoke = Smoke(options, transport=transport)
    stdout.write(f"parley-smoke: run {smoke.run_id} against {options.api_url}\n")
    rows = smoke.run()
    if args.json:
        for row in rows:
            stdout.write(json.dumps(row.__dict__) + "\n")
    else:
        render(rows, stdout)
    return EXIT_FAILED if any(r.status == "fail" for r in rows) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
